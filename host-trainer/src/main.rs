//! `microdiff` command-line tool. The commands arrive with the CPU-trainer issue.

fn main() {
    eprintln!(
        "microdiff {}: the trainer commands are not built yet; see README.md for what works today",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
