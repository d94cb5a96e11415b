//! `microdiff` — train small diffusion models on the host, export them for microcontrollers.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
