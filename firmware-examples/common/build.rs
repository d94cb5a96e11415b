//! Turns `tests/golden/cases.txt` and the golden blobs into Rust tables (`$OUT_DIR/golden.rs`),
//! so every firmware runs exactly the cases the host checks, with no copy to keep in sync.

use std::fmt::Write as _;
use std::path::PathBuf;

/// The blobs of a `small-flash` board's second image (`second-image.txt`): the golden set
/// exceeds a micro:bit's 256 KB of flash next to the runtime, so such a board runs it as two
/// firmware images, each leaving the other's blobs out (their cases are reported `skipped` and
/// the host runner takes each case from the image that ran it).
fn second_image(manifest: &std::path::Path) -> Vec<String> {
    let path = manifest.join("second-image.txt");
    println!("cargo:rerun-if-changed={}", path.display());
    std::fs::read_to_string(&path)
        .expect("common/second-image.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn main() {
    let small_flash = std::env::var_os("CARGO_FEATURE_SMALL_FLASH").is_some();
    let part2 = std::env::var_os("CARGO_FEATURE_SMALL_FLASH_PART2").is_some();
    // Development aid: `MICRODIFF_ONLY_BLOB=digits-w8a8.mdfb cargo run --release` runs (and
    // links) only that blob's cases, e.g. to trace one model under QEMU (`-d exec,in_asm`).
    println!("cargo:rerun-if-env-changed=MICRODIFF_ONLY_BLOB");
    let only = std::env::var("MICRODIFF_ONLY_BLOB").ok();
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let second = second_image(&manifest);
    let left_out = |blob: &str| {
        (small_flash && second.iter().any(|b| b == blob) != part2)
            || only.as_deref().is_some_and(|o| o != blob)
    };
    let golden = manifest.join("../../tests/golden");
    let cases_path = golden.join("cases.txt");
    println!("cargo:rerun-if-changed={}", cases_path.display());
    let text = std::fs::read_to_string(&cases_path).expect("tests/golden/cases.txt");

    let mut blobs: Vec<String> = Vec::new();
    let mut cases = String::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 6, "bad line in cases.txt: {line}");
        let blob = match blobs.iter().position(|b| b == f[0]) {
            Some(i) => i,
            None => {
                blobs.push(f[0].to_string());
                blobs.len() - 1
            }
        };
        let sha: Vec<String> = (0..32)
            .map(|i| format!("0x{}", &f[5][2 * i..2 * i + 2]))
            .collect();
        writeln!(
            cases,
            "    Case {{ blob: {blob}, program: {:?}, seed: {}, stream: {}, class: {}, sha256: [{}], skipped: {} }},",
            f[1],
            f[2],
            f[3],
            f[4],
            sha.join(", "),
            left_out(f[0])
        )
        .unwrap();
    }
    let mut out = String::from(
        "/// A blob's bytes at a 4-byte-aligned address.\n#[repr(C, align(4))]\npub struct Aligned<const N: usize>(pub [u8; N]);\n\n/// The golden blobs, in the order cases refer to them.\npub static BLOBS: &[(&str, &[u8])] = &[\n",
    );
    for b in &blobs {
        let path = golden.join(b);
        println!("cargo:rerun-if-changed={}", path.display());
        if left_out(b) {
            writeln!(out, "    ({b:?}, &[]),").unwrap();
            continue;
        }
        // Word-aligned, as a blob in flash should be: the integer kernels read weights with
        // word loads (LDM) and take a slower path for an unaligned blob.
        writeln!(
            out,
            "    ({b:?}, {{ static B: Aligned<{{ include_bytes!({p:?}).len() }}> = Aligned(*include_bytes!({p:?})); &B.0 }}),",
            p = path
                .canonicalize()
                .expect("golden blob")
                .display()
                .to_string()
        )
        .unwrap();
    }
    out += "];\n\n/// Every case of `tests/golden/cases.txt`.\npub static CASES: &[Case] = &[\n";
    out += &cases;
    out += "];\n";
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("golden.rs");
    std::fs::write(dest, out).unwrap();
}
