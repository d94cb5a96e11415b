//! `golden` — checks the golden vectors, or regenerates them when asked explicitly.
//!
//! `cargo run -p microdiff-conformance --bin golden` (or `cargo xtask golden`) rebuilds every
//! golden blob, compares it with the checked-in file, runs every case and compares digests;
//! it prints a table and exits 1 on any difference. With `--bless` it rewrites the files and
//! prints what changed. Nothing is rewritten without `--bless`.

use std::process::ExitCode;

use microdiff_conformance::golden::{self, BLOBS, Case};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bless = match args.as_slice() {
        [] => false,
        [a] if a == "--bless" => true,
        [a] if a == "-h" || a == "--help" => {
            println!(
                "usage: golden [--bless]\n  checks tests/golden; --bless rewrites it and prints the changes"
            );
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("usage: golden [--bless]");
            return ExitCode::from(2);
        }
    };
    match run(bless) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("golden: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(bless: bool) -> Result<bool, String> {
    let dir = golden::dir();
    let mut ok = true;
    for (dtype, file) in BLOBS {
        let built = golden::build_blob(dtype, file).map_err(|e| format!("building {file}: {e}"))?;
        let path = dir.join(file);
        let old = std::fs::read(&path).ok();
        let same = old.as_deref() == Some(&built[..]);
        println!(
            "{file:<20} {} bytes  {}",
            built.len(),
            if same {
                "same"
            } else if old.is_none() {
                "MISSING"
            } else {
                "DIFFERS"
            }
        );
        if !same {
            ok = false;
            if bless {
                std::fs::write(&path, &built).map_err(|e| format!("{}: {e}", path.display()))?;
                println!("  rewrote {}", path.display());
            }
        }
    }
    let cases_path = dir.join("cases.txt");
    let old_text = std::fs::read_to_string(&cases_path).unwrap_or_default();
    let old = golden::parse_cases(&old_text)?;
    let mut new = Vec::new();
    println!(
        "{:<18} {:<12} {:>5} {:>6} {:>5}  result",
        "blob", "program", "seed", "stream", "class"
    );
    for (blob, program, spec) in golden::case_grid() {
        let bytes = golden::build_blob(
            BLOBS
                .iter()
                .find(|b| b.1 == blob)
                .map(|b| b.0)
                .ok_or("unknown blob")?,
            &blob,
        )
        .map_err(|e| e.to_string())?;
        let out =
            golden::run(&bytes, &program, spec).map_err(|e| format!("{blob} {program}: {e}"))?;
        let sha = golden::sha256_hex(&out);
        let case = Case {
            blob,
            program,
            spec,
            sha256: sha,
        };
        let prev = old
            .iter()
            .find(|c| c.blob == case.blob && c.program == case.program && c.spec == case.spec);
        let status = match prev {
            Some(p) if p.sha256 == case.sha256 => "match",
            Some(_) => "CHANGED",
            None => "NEW",
        };
        if status != "match" {
            ok = false;
        }
        println!(
            "{:<18} {:<12} {:>5} {:>6} {:>5}  {status}{}",
            case.blob,
            case.program,
            case.spec.seed,
            case.spec.stream,
            case.spec.class,
            match prev {
                Some(p) if p.sha256 != case.sha256 =>
                    format!(" (was {}, now {})", &p.sha256[..16], &case.sha256[..16]),
                _ => String::new(),
            }
        );
        new.push(case);
    }
    for c in &old {
        if !new
            .iter()
            .any(|n| n.blob == c.blob && n.program == c.program && n.spec == c.spec)
        {
            println!("{} {} seed {}: REMOVED", c.blob, c.program, c.spec.seed);
            ok = false;
        }
    }
    if bless {
        if ok {
            println!("golden: nothing changed");
        } else {
            std::fs::write(&cases_path, golden::format_cases(&new))
                .map_err(|e| format!("{}: {e}", cases_path.display()))?;
            println!("golden: rewrote {}", cases_path.display());
        }
        return Ok(true);
    }
    if !ok {
        println!(
            "golden: differences found; if they are intended, run `cargo xtask golden --bless`"
        );
    }
    Ok(ok)
}
