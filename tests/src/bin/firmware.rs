//! `firmware` — cross-target conformance and size report for the QEMU firmware examples.
//!
//! * `firmware conformance [--bless-output] [TARGET…]` builds each firmware, runs it under
//!   QEMU, and prints a table target × golden case → match / MISMATCH (first differing element
//!   and both values); also compares the run with the package's `expected-output.txt`
//!   (`--bless-output` rewrites it); exits 1 on any difference. Reports are kept in
//!   `target/firmware-reports/`.
//! * `firmware size [--bless] [--reuse-reports] [--json]` builds each firmware and its `baseline` variant and prints text /
//!   data / bss, the runtime's share, arena, stack high-water mark and instructions per denoising
//!   step; compares with the checked-in `expected-size.txt` (fails when a build grows by more
//!   than [`GROWTH_MARGIN`]); `--bless` rewrites those files. `--json` prints one JSON object
//!   per target instead of the table (keys in [`json_line`]).
//! * `firmware panic-free` builds `firmware-examples/size-probe` (the runtime as a firmware
//!   links it) for the Cortex-M4F and the Cortex-M0, with the default features and with only
//!   the integer path, with the blob parsed on the device (`runtime-parse`) and validated at
//!   compile time, and fails if any build links a panic entry point (a symbol of
//!   `firmware::PANIC_MARKERS`); then builds it with `panic-canary` (one indexing that can
//!   panic) and fails unless the check catches that one. The runtime's "never panics" contract,
//!   proved on the linked code rather than argued.

use std::process::ExitCode;

use microdiff_conformance::firmware::{self, Report, TARGETS, Target, Verdict};
use microdiff_conformance::golden;

/// Allowed growth of flash or static RAM over `expected-size.txt` before `size` fails.
const GROWTH_MARGIN: f64 = 0.05;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("conformance") => conformance(&args[1..]),
        Some("size") => size(&args[1..]),
        Some("panic-free") => panic_free(),
        _ => {
            eprintln!(
                "usage: firmware conformance [m0|m4f|m7|riscv32 …]\n       firmware size [--bless]\n       firmware panic-free"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("firmware: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pick(names: &[String]) -> Result<Vec<Target>, String> {
    if names.is_empty() {
        return Ok(TARGETS.to_vec());
    }
    names
        .iter()
        .map(|n| {
            TARGETS
                .iter()
                .copied()
                .find(|t| t.name == n)
                .ok_or(format!("unknown target {n}"))
        })
        .collect()
}

fn reports_dir() -> std::path::PathBuf {
    firmware::repo_root()
        .join("target")
        .join("firmware-reports")
}

/// Builds and runs `t`, saving its report; `Err` if it could not run at all.
fn run_target(t: &Target) -> Result<(Report, firmware::Run), String> {
    // Each image in turn; their reports concatenated parse as one (a case takes the verdict
    // of the image that ran it). The first image is left built, for the size report.
    let n = t.images.len();
    let mut outputs = vec![String::new(); n];
    let mut run = firmware::Run {
        stdout: String::new(),
        code: Some(0),
        seconds: 0.0,
    };
    for (i, features) in t.images.iter().enumerate().rev() {
        firmware::build(t, *features)?;
        let r = firmware::run(t, *features)?;
        outputs[i] = r.stdout;
        if r.code != Some(0) {
            run.code = r.code;
        }
        run.seconds += r.seconds;
    }
    run.stdout = if n == 1 {
        outputs.concat()
    } else {
        outputs
            .iter()
            .enumerate()
            .map(|(i, o)| format!("image {} of {n}\n{o}", i + 1))
            .collect()
    };
    std::fs::create_dir_all(reports_dir()).map_err(|e| e.to_string())?;
    let _ = std::fs::write(reports_dir().join(format!("{}.txt", t.name)), &run.stdout);
    Ok((firmware::parse_report(&run.stdout), run))
}

/// The report lines that must not change unless the golden vectors do: all but the
/// compiler-dependent `perf` and `stack` lines.
fn stable_lines(report: &str) -> String {
    report
        .lines()
        .filter(|l| {
            !l.starts_with("perf ") && !l.starts_with("netperf ") && !l.starts_with("stack ")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn conformance(args: &[String]) -> Result<bool, String> {
    let bless_output = args.iter().any(|a| a == "--bless-output");
    let names: Vec<String> = args
        .iter()
        .filter(|a| *a != "--bless-output")
        .cloned()
        .collect();
    let targets = pick(&names)?;
    let text =
        std::fs::read_to_string(golden::dir().join("cases.txt")).map_err(|e| e.to_string())?;
    let cases = golden::parse_cases(&text)?;
    let host = firmware::host_outputs(&cases)?;
    let mut all_ok = true;
    let mut columns = Vec::new();
    for t in &targets {
        eprintln!(
            "conformance: building and running {} ({}) …",
            t.dir, t.machine
        );
        match run_target(t) {
            Ok((report, run)) => {
                let verdicts: Vec<Verdict> = cases
                    .iter()
                    .enumerate()
                    .map(|(i, c)| firmware::judge(t, c, &host[i], report.cases.get(&i)))
                    .collect();
                let exit_ok = run.code == Some(0);
                all_ok &= exit_ok && verdicts.iter().all(|v| matches!(v, Verdict::Match));
                let expected_path = firmware::package_dir(t).join("expected-output.txt");
                let stable = stable_lines(&run.stdout);
                if bless_output {
                    std::fs::write(&expected_path, &stable).map_err(|e| e.to_string())?;
                } else if std::fs::read_to_string(&expected_path).ok().as_deref()
                    != Some(stable.as_str())
                {
                    eprintln!(
                        "conformance: {}: output differs from {} (rewrite with `firmware conformance --bless-output` once the golden vectors are blessed)",
                        t.name,
                        expected_path.display()
                    );
                    all_ok = false;
                }
                eprintln!(
                    "conformance: {} finished in {:.1} s, exit code {:?}, firmware says {:?}",
                    t.name, run.seconds, run.code, report.done
                );
                if !report.digit.is_empty() {
                    println!("{} sampled a digit:", t.name);
                    for row in &report.digit {
                        println!("    {row}");
                    }
                }
                columns.push((t.name, Some(verdicts)));
            }
            Err(e) => {
                eprintln!("conformance: {}: {e}", t.name);
                all_ok = false;
                columns.push((t.name, None));
            }
        }
    }
    println!();
    print!(
        "{:<18} {:<12} {:>4} {:>4} {:>3} {:>6}",
        "blob", "program", "seed", "strm", "cls", "host"
    );
    for (name, _) in &columns {
        print!(" {name:>9}");
    }
    println!();
    let mut notes = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        // The host's own digest is checked against the golden one too.
        let host_bytes: Vec<u8> = host[i].iter().flat_map(|b| b.to_le_bytes()).collect();
        let host_ok = golden::sha256_hex(&host_bytes) == c.sha256;
        all_ok &= host_ok;
        print!(
            "{:<18} {:<12} {:>4} {:>4} {:>3} {:>6}",
            c.blob,
            c.program,
            c.spec.seed,
            c.spec.stream,
            c.spec.class,
            if host_ok { "match" } else { "MISMATCH" }
        );
        for (name, v) in &columns {
            let cell = match v {
                None => "no run".to_string(),
                Some(v) => match &v[i] {
                    Verdict::Match => "match".into(),
                    Verdict::Mismatch(why) => {
                        notes.push(format!(
                            "{name}, case {i} ({} {}): {why}",
                            c.blob, c.program
                        ));
                        "MISMATCH".into()
                    }
                },
            };
            print!(" {cell:>9}");
        }
        println!();
    }
    for n in &notes {
        println!("  {n}");
    }
    println!(
        "conformance: {}",
        if all_ok {
            "every golden case matches on every target and on the host"
        } else {
            "MISMATCH (see above)"
        }
    );
    Ok(all_ok)
}

/// Multiply-accumulates of one network evaluation of a golden blob: Σ rows·cols over its
/// linear layers (`QLINEAR`: the layer's own rows and columns, not the tile padding).
fn macs_per_eval(file: &str) -> Result<u64, String> {
    use microdiff_runtime::blob::graph::Op;
    let bytes = std::fs::read(golden::dir().join(file)).map_err(|e| format!("{file}: {e}"))?;
    let model = microdiff_runtime::Model::parse(&bytes).map_err(|e| format!("{file}: {e}"))?;
    let s = &model.graph().structure;
    let mut macs = 0u64;
    for k in 0..model.graph().op_count() {
        match model.graph().op(k) {
            Ok(Op::Linear { weight, .. }) => {
                let w = model.tensors().get(weight).map_err(|e| e.to_string())?;
                macs += u64::from(w.rows) * u64::from(w.cols);
            }
            Ok(Op::QLinear { a, .. }) => {
                macs += u64::from(s.len[k as usize + 1]) * u64::from(s.len[a as usize]);
            }
            _ => {}
        }
    }
    Ok(macs)
}

/// `firmware panic-free` (see the module doc). Prints one line per build.
fn panic_free() -> Result<bool, String> {
    let dir = firmware::repo_root().join("firmware-examples/size-probe");
    // The parser runs on the device only in `runtime-parse` builds (the others validate the
    // blob at compile time), so each core checks both kinds.
    let builds: [(&str, &[&str], bool); 6] = [
        (
            "thumbv7em-none-eabihf",
            &["--features", "runtime-parse"],
            false,
        ),
        (
            "thumbv7em-none-eabihf",
            &["--no-default-features", "--features", "w8a8"],
            false,
        ),
        (
            "thumbv6m-none-eabi",
            &["--features", "runtime-parse"],
            false,
        ),
        (
            "thumbv6m-none-eabi",
            &["--no-default-features", "--features", "w8a8,runtime-parse"],
            false,
        ),
        (
            "thumbv6m-none-eabi",
            &["--no-default-features", "--features", "w8a8"],
            false,
        ),
        (
            "thumbv7em-none-eabihf",
            &["--features", "panic-canary"],
            true,
        ),
    ];
    let mut ok = true;
    for (triple, features, canary) in builds {
        // Its own target directory per build: the feature sets write the same ELF path.
        let target_dir = dir
            .join("target")
            .join("panic-free")
            .join(features.join("_"));
        let status = std::process::Command::new("cargo")
            .args(["build", "--release", "--quiet", "--target", triple])
            .args(features)
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("size-probe: {e}"))?;
        if !status.success() {
            return Err(format!(
                "size-probe for {triple} {features:?}: cargo build failed"
            ));
        }
        let elf = target_dir.join(triple).join("release/size-probe");
        let found = firmware::panic_symbols(&elf)?;
        let what = format!("size-probe {triple} {}", features.join(" "));
        match (canary, found.is_empty()) {
            (false, true) => println!("{what}: no panic entry point linked"),
            (false, false) => {
                ok = false;
                println!("{what}: PANIC PATH LINKED: {}", found.join(", "));
                println!(
                    "  find the call sites: llvm-objdump -d --demangle {} | grep -B2 'bl.*panic'",
                    elf.display()
                );
            }
            (true, false) => println!(
                "{what}: the check catches the canary ({} symbols)",
                found.len()
            ),
            (true, true) => {
                ok = false;
                println!("{what}: the canary's panic path was NOT detected: the check is broken");
            }
        }
    }
    Ok(ok)
}

/// The integer-only runtime's flash for a Cortex-M target: `firmware-examples/size-probe` built
/// with `--no-default-features --features w8a8` (the runtime without its float network, running
/// the full-integer digits golden) less its `baseline` build, weights (`.blob`) excluded.
/// Returns `(validated at compile time, parsed at run time)`: the probe's default build
/// validates its linked blob in a `const` (as the firmware template does, so no parser is
/// linked); `--features runtime-parse` runs `Model::parse` on the device, as a firmware that
/// loads its blob at run time must. `None` for targets the probe does not build for (RISC-V).
fn probe_flash_w8a8(t: &Target) -> Result<Option<(u64, u64)>, String> {
    if !t.triple.starts_with("thumb") {
        return Ok(None);
    }
    let dir = firmware::repo_root().join("firmware-examples/size-probe");
    let elf = dir.join("target").join(t.triple).join("release/size-probe");
    let flash = |features: &[&str]| -> Result<u64, String> {
        let status = std::process::Command::new("cargo")
            .args(["build", "--release", "--quiet", "--target", t.triple])
            .args(features)
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("size-probe: {e}"))?;
        if !status.success() {
            return Err(format!("size-probe for {}: cargo build failed", t.triple));
        }
        Ok(firmware::elf_sizes(&elf)?.flash() - firmware::section_size(&elf, ".blob")?)
    };
    let probe = flash(&["--no-default-features", "--features", "w8a8"])?;
    let parsing = flash(&["--no-default-features", "--features", "w8a8,runtime-parse"])?;
    let base = flash(&["--features", "baseline"])?;
    Ok(Some((
        probe.saturating_sub(base),
        parsing.saturating_sub(base),
    )))
}

/// `(steps, evaluations, instructions)` of the golden case `blob`/`program` in a report.
fn case_perf(report: &Report, blob: &str, program: &str) -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string(golden::dir().join("cases.txt")).unwrap_or_default();
    let cases = golden::parse_cases(&text).unwrap_or_default();
    cases
        .iter()
        .position(|c| c.blob == blob && c.program == program)
        .and_then(|i| report.cases.get(&i)?.perf)
}

/// A case's `(steps, evaluations, instructions)`, where the firmware counted them.
type Perf = Option<(u64, u64, u64)>;

/// `instructions / (evaluations · macs)` with three decimals, or `null`.
fn per_mac(perf: Option<(u64, u64, u64)>, macs: u64) -> String {
    perf.filter(|&(_, evals, _)| evals > 0 && macs > 0)
        .map_or("null".to_string(), |(_, evals, n)| {
            format!("{:.3}", n as f64 / (evals * macs) as f64)
        })
}

/// One target's figures as a JSON object (machine-readable `size --json`):
/// `target`; `flash_bytes`, `static_ram_bytes` (data + bss), `stack_bytes`, `arena_bytes`;
/// `runtime_and_runner_flash_bytes` — the firmware less its `baseline` build less the golden
/// blobs it links (the runtime with both network paths, the case runner and SHA-256);
/// `runtime_flash_bytes_w8a8` — the runtime built with only the integer path, its blob
/// validated at compile time, and `runtime_flash_bytes_w8a8_runtime_parse` — the same with
/// `Model::parse` on the device ([`probe_flash_w8a8`], Cortex-M targets); for the trained guided digits models
/// (`ddim10-cfg`: 10 guided steps, 20 network evaluations), `digits-i8.mdfb` (int8 weights,
/// f32 arithmetic) and `digits-w8a8.mdfb` (full integer): `macs_per_eval_digits` and
/// `macs_per_eval_w8a8_digits`, `instructions_per_sample_{f32,w8a8}_digits_cfg10` (the whole
/// program: network, `LIN`s, noise) and `instructions_per_mac_{f32,w8a8}` (one network
/// evaluation alone, the firmware's `netperf` line, / MACs); and docs/zoo.md's device columns,
/// the whole-program counts of [`ZOO_KEYS`] (e.g. `instructions_per_sample_vae_digits`: the
/// digits VAE decoder, `digits-vae.mdfb`, program `decode`, one network pass).
/// Figures a target cannot give are `null`.
#[allow(clippy::too_many_arguments)]
fn json_line(
    t: &Target,
    probe: &firmware::Sizes,
    runtime_flash: i64,
    report: &Report,
    (digits, macs): (Option<(u64, u64, u64)>, u64),
    (w8a8, w8a8_macs): (Option<(u64, u64, u64)>, u64),
    zoo: &[(&str, Perf)],
    runtime_flash_w8a8: Option<(u64, u64)>,
) -> String {
    let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    // One network evaluation (the `netperf` line), counted as one evaluation of `macs`.
    let net = |file: &str| report.netperf.get(file).map(|&n| (1, 1, n));
    let zoo: String = zoo
        .iter()
        .map(|(key, perf)| format!(",\"{key}\":{}", opt(perf.map(|d| d.2))))
        .collect();
    format!(
        "{{\"target\":\"{}\",\"flash_bytes\":{},\"static_ram_bytes\":{},\"stack_bytes\":{},\"arena_bytes\":{},\"runtime_and_runner_flash_bytes\":{},\"runtime_flash_bytes_w8a8\":{},\"runtime_flash_bytes_w8a8_runtime_parse\":{},\"macs_per_eval_digits\":{},\"instructions_per_sample_f32_digits_cfg10\":{},\"instructions_per_mac_f32\":{},\"macs_per_eval_w8a8_digits\":{},\"instructions_per_sample_w8a8_digits_cfg10\":{},\"instructions_per_mac_w8a8\":{}{zoo}}}",
        t.name,
        probe.flash(),
        probe.ram(),
        opt(report.stack),
        opt(report.arena),
        runtime_flash,
        opt(runtime_flash_w8a8.map(|f| f.0)),
        opt(runtime_flash_w8a8.map(|f| f.1)),
        macs,
        opt(digits.map(|d| d.2)),
        per_mac(net(golden::DIGITS_FILE), macs),
        w8a8_macs,
        opt(w8a8.map(|d| d.2)),
        per_mac(net(golden::DIGITS_W8A8_FILE), w8a8_macs),
    )
}

/// The zoo's per-sample counts in `size --json` (docs/zoo.md's device columns): `(key, golden
/// blob, program)`, one whole program each.
const ZOO_KEYS: [(&str, &str, &str); 15] = [
    (
        "instructions_per_sample_vae_digits",
        golden::DIGITS_VAE_FILE,
        golden::VAE_PROGRAM,
    ),
    (
        "instructions_per_sample_vae_w8a8_digits",
        golden::DIGITS_VAE_W8A8_FILE,
        golden::VAE_PROGRAM,
    ),
    (
        "instructions_per_sample_hvae_digits",
        golden::DIGITS_HVAE_FILE,
        golden::VAE_PROGRAM,
    ),
    (
        "instructions_per_sample_rbm_gibbs10_digits",
        golden::DIGITS_RBM_FILE,
        golden::RBM_PROGRAMS[0],
    ),
    (
        "instructions_per_sample_rbm_gibbs50_digits",
        golden::DIGITS_RBM_FILE,
        golden::RBM_PROGRAMS[1],
    ),
    (
        "instructions_per_sample_rbm_w8a8_gibbs10_digits",
        golden::DIGITS_RBM_W8A8_FILE,
        golden::RBM_PROGRAMS[0],
    ),
    (
        "instructions_per_sample_rbm_w8a8_gibbs50_digits",
        golden::DIGITS_RBM_W8A8_FILE,
        golden::RBM_PROGRAMS[1],
    ),
    (
        "instructions_per_sample_diffusion_dpmpp2m10_8gaussians",
        golden::TOY_DIFFUSION_FILE,
        golden::TOY_DIFFUSION_PROGRAM,
    ),
    (
        "instructions_per_sample_vae_8gaussians",
        golden::TOY_VAE_FILE,
        golden::VAE_PROGRAM,
    ),
    (
        "instructions_per_sample_vae_w8a8_8gaussians",
        golden::TOY_VAE_W8A8_FILE,
        golden::VAE_PROGRAM,
    ),
    (
        "instructions_per_sample_hvae_8gaussians",
        golden::TOY_HVAE_FILE,
        golden::VAE_PROGRAM,
    ),
    (
        "instructions_per_sample_rbm_gibbs10_8gaussians",
        golden::TOY_RBM_FILE,
        golden::RBM_PROGRAMS[0],
    ),
    (
        "instructions_per_sample_rbm_gibbs50_8gaussians",
        golden::TOY_RBM_FILE,
        golden::RBM_PROGRAMS[1],
    ),
    (
        "instructions_per_sample_rbm_w8a8_gibbs10_8gaussians",
        golden::TOY_RBM_W8A8_FILE,
        golden::RBM_PROGRAMS[0],
    ),
    (
        "instructions_per_sample_rbm_w8a8_gibbs50_8gaussians",
        golden::TOY_RBM_W8A8_FILE,
        golden::RBM_PROGRAMS[1],
    ),
];

fn size(args: &[String]) -> Result<bool, String> {
    let mut bless = false;
    let mut reuse = false;
    let mut json = false;
    for a in args {
        match a.as_str() {
            "--bless" => bless = true,
            // Read the reports `conformance` just saved instead of running QEMU again.
            "--reuse-reports" => reuse = true,
            "--json" => json = true,
            _ => return Err("usage: firmware size [--bless] [--reuse-reports] [--json]".into()),
        }
    }
    let digits_macs = macs_per_eval(golden::DIGITS_FILE)?;
    let w8a8_macs = macs_per_eval(golden::DIGITS_W8A8_FILE)?;
    let mut ok = true;
    // The golden blobs a target's first image links in (weights, not code).
    let blob_bytes = |t: &Target| -> u64 {
        t.image_blobs(0)
            .iter()
            .map(|f| std::fs::metadata(golden::dir().join(f)).map_or(0, |m| m.len()))
            .sum()
    };
    let header = format!(
        "{:<8} {:>8} {:>6} {:>6} {:>7} {:>8} {:>7} {:>7} {:>7} {:>11} {:>12} {:>12} {:>12}",
        "target",
        "text",
        "data",
        "bss",
        "blobs",
        "runtime",
        "flash%",
        "arena",
        "stack",
        "RAM use",
        "ref ddim10",
        "digits cfg",
        "w8a8 cfg"
    );
    if !json {
        println!("{header}");
    }
    for t in &TARGETS {
        firmware::build(t, Some("baseline"))?;
        let base = firmware::elf_sizes(&firmware::elf_path(t))?;
        let saved = reports_dir().join(format!("{}.txt", t.name));
        let report = match std::fs::read_to_string(&saved) {
            Ok(text) if reuse => {
                firmware::build(t, None)?;
                firmware::parse_report(&text)
            }
            _ => run_target(t)?.0,
        };
        let probe = firmware::elf_sizes(&firmware::elf_path(t))?;
        let ram_use = probe.ram() + report.stack.unwrap_or(0);
        let per_step = |blob: &str, program: &str| -> String {
            let text = std::fs::read_to_string(golden::dir().join("cases.txt")).unwrap_or_default();
            let cases = golden::parse_cases(&text).unwrap_or_default();
            cases
                .iter()
                .position(|c| c.blob == blob && c.program == program)
                .and_then(|i| report.cases.get(&i)?.perf)
                // Steps include the initial-noise step, which evaluates nothing.
                .map_or("-".into(), |(steps, _, n)| {
                    format!("{}", n / steps.saturating_sub(1).max(1))
                })
        };
        let digits_case = case_perf(&report, golden::DIGITS_FILE, golden::DIGITS_PROGRAM);
        let w8a8_case = case_perf(&report, golden::DIGITS_W8A8_FILE, golden::DIGITS_PROGRAM);
        let blobs = blob_bytes(t);
        if json {
            let w8a8_flash = probe_flash_w8a8(t)?;
            println!(
                "{}",
                json_line(
                    t,
                    &probe,
                    probe.flash() as i64 - base.flash() as i64 - blobs as i64,
                    &report,
                    (digits_case, digits_macs),
                    (w8a8_case, w8a8_macs),
                    &ZOO_KEYS
                        .iter()
                        .map(|&(key, file, program)| (key, case_perf(&report, file, program)))
                        .collect::<Vec<_>>(),
                    w8a8_flash,
                )
            );
        } else {
            println!(
                "{:<8} {:>8} {:>6} {:>6} {:>7} {:>8} {:>6.1}% {:>7} {:>7} {:>11} {:>12} {:>12} {:>12}",
                t.name,
                probe.text,
                probe.data,
                probe.bss,
                blobs,
                probe.flash() as i64 - base.flash() as i64 - blobs as i64,
                100.0 * probe.flash() as f64 / t.flash_bytes as f64,
                report.arena.map_or("-".into(), |a| a.to_string()),
                report.stack.map_or("-".into(), |s| s.to_string()),
                format!("{ram_use}/{}", t.ram_bytes),
                per_step("ref-mlp-i8.mdfb", "ddim10"),
                per_step(golden::DIGITS_FILE, golden::DIGITS_PROGRAM),
                per_step(golden::DIGITS_W8A8_FILE, golden::DIGITS_PROGRAM),
            );
        }
        if ram_use > t.ram_bytes || probe.flash() > t.flash_bytes {
            println!("  {}: does not fit the modelled MCU", t.name);
            ok = false;
        }
        // A multi-image target's other images must fit too (the report measures the first).
        for (i, features) in t.images.iter().enumerate().skip(1) {
            firmware::build(t, *features)?;
            let other = firmware::elf_sizes(&firmware::elf_path(t))?;
            if other.ram() + report.stack.unwrap_or(0) > t.ram_bytes
                || other.flash() > t.flash_bytes
            {
                println!(
                    "  {}: image {} does not fit the modelled MCU",
                    t.name,
                    i + 1
                );
                ok = false;
            }
        }
        if t.images.len() > 1 {
            firmware::build(t, t.images[0])?;
        }
        // Issue #14's bound: a VAE sample costs at most a tenth of the guided diffusion digit,
        // each in the same arithmetic (full integer, and int8 weights with f32 arithmetic).
        for (vae, digit, what) in [
            (
                golden::DIGITS_VAE_W8A8_FILE,
                golden::DIGITS_W8A8_FILE,
                "W8A8",
            ),
            (
                golden::DIGITS_VAE_FILE,
                golden::DIGITS_FILE,
                "f32-arithmetic",
            ),
        ] {
            let v = case_perf(&report, vae, golden::VAE_PROGRAM);
            let d = case_perf(&report, digit, golden::DIGITS_PROGRAM);
            if let (Some((_, _, v)), Some((_, _, d))) = (v, d)
                && v.saturating_mul(10) > d
            {
                println!(
                    "  {}: a {what} VAE sample costs {v} instructions, more than a tenth of the {what} guided digit's {d}",
                    t.name
                );
                ok = false;
            }
        }
        let expected_path = firmware::package_dir(t).join("expected-size.txt");
        let current = format!(
            "# Release build of {} ({}), bytes. Checked by `cargo xtask size`; rewrite with `cargo xtask size --bless`.\ntext {}\ndata {}\nbss {}\n",
            t.dir, t.triple, probe.text, probe.data, probe.bss
        );
        if bless {
            std::fs::write(&expected_path, current).map_err(|e| e.to_string())?;
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let field = |k: &str| {
            expected
                .lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        match (field("text"), field("data"), field("bss")) {
            (Some(et), Some(ed), Some(eb)) => {
                let grew = |now: u64, was: u64| now as f64 > was as f64 * (1.0 + GROWTH_MARGIN);
                if grew(probe.flash(), et + ed) || grew(probe.ram(), ed + eb) {
                    println!(
                        "  {}: grew more than {:.0}% over expected-size.txt (flash {} → {}, static RAM {} → {}); if intended: cargo xtask size --bless",
                        t.name,
                        GROWTH_MARGIN * 100.0,
                        et + ed,
                        probe.flash(),
                        ed + eb,
                        probe.ram()
                    );
                    ok = false;
                }
            }
            _ => {
                println!(
                    "  {}: no expected-size.txt; create it with cargo xtask size --bless",
                    t.name
                );
                ok = false;
            }
        }
    }
    if json {
        return Ok(ok);
    }
    println!(
        "\nblobs = the golden weight blobs linked in; runtime = flash of the firmware minus its `baseline` build\n\
         (same board code without runtime and blobs) minus the blobs: the runtime, SHA-256 and the case runner;\n\
         instructions per denoising step = instructions counted over the program / (steps − 1), under QEMU -icount shift=0."
    );
    Ok(ok)
}
