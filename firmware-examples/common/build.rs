//! Turns `tests/golden/cases.txt` and the golden blobs into Rust tables (`$OUT_DIR/golden.rs`),
//! so every firmware runs exactly the cases the host checks, with no copy to keep in sync.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
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
            "    Case {{ blob: {blob}, program: {:?}, seed: {}, stream: {}, class: {}, sha256: [{}] }},",
            f[1],
            f[2],
            f[3],
            f[4],
            sha.join(", ")
        )
        .unwrap();
    }
    let mut out = String::from(
        "/// The golden blobs, in the order cases refer to them.\npub static BLOBS: &[(&str, &[u8])] = &[\n",
    );
    for b in &blobs {
        let path = golden.join(b);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            out,
            "    ({b:?}, include_bytes!({:?})),",
            path.canonicalize()
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
