//! Golden vectors on the host: the checked-in blobs are what the generator emits today, and
//! every case in `cases.txt` reproduces its digest. Firmware targets re-run the same cases.

use microdiff_conformance::golden::{self, BLOBS};

#[test]
fn golden_blobs_are_reproduced_byte_for_byte() {
    for (dtype, file) in BLOBS {
        let on_disk = std::fs::read(golden::dir().join(file)).expect("golden blob present");
        let built = golden::build_blob(dtype, file).expect("builds");
        assert!(
            on_disk == built,
            "{file} differs from what the emitter writes now; if intended: cargo xtask golden --bless"
        );
    }
}

#[test]
fn golden_cases_match() {
    let text = std::fs::read_to_string(golden::dir().join("cases.txt")).expect("cases.txt present");
    let cases = golden::parse_cases(&text).expect("cases.txt parses");
    assert_eq!(
        cases.len(),
        golden::case_grid().len(),
        "cases.txt is not the full case grid"
    );
    for c in &cases {
        let blob = std::fs::read(golden::dir().join(&c.blob)).expect("blob present");
        let out = golden::run(&blob, &c.program, c.spec).expect("case runs");
        assert_eq!(
            golden::sha256_hex(&out),
            c.sha256,
            "{} {} seed {} stream {} class {}",
            c.blob,
            c.program,
            c.spec.seed,
            c.spec.stream,
            c.spec.class
        );
    }
}

#[test]
fn a_sample_does_not_depend_on_other_samples() {
    // Stream 7 drawn alone equals stream 7 drawn after streams 0..7 through one reused arena.
    let blob = std::fs::read(golden::dir().join("ref-mlp-f32.mdfb")).unwrap();
    let spec = |stream| microdiff_runtime::SampleRequest {
        seed: 3,
        stream,
        class: 2,
    };
    let alone = golden::run(&blob, "ddpm100", spec(7)).unwrap();
    let model = microdiff_runtime::Model::parse(&blob).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut out = vec![0.0f32; model.data_len()];
    for s in 0..=7 {
        microdiff_runtime::sample(
            &model,
            model.program("ddpm100").unwrap(),
            &mut arena,
            spec(s),
            &mut out,
        )
        .unwrap();
    }
    let batched: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(alone, batched);
    let other = golden::run(&blob, "ddpm100", spec(6)).unwrap();
    assert_ne!(
        alone, other,
        "different streams must give different samples"
    );
}

/// A digits network with its time MLP folded into a `TIME_TABLE` (as `microdiff export` writes
/// such a model, and as the trained goldens carry it) samples bit for bit like the unfolded one.
#[test]
fn the_folded_digits_network_samples_like_the_unfolded_network() {
    let folded = golden::digits_blob_folded().unwrap();
    let plain = golden::digits_blob_unfolded().unwrap();
    let parse = |b: &[u8]| {
        microdiff_runtime::Model::parse(b)
            .unwrap()
            .graph()
            .time_table()
    };
    assert!(parse(&folded).is_some() && parse(&plain).is_none());
    assert!(folded.len() < plain.len());
    for i in 0..20u32 {
        let spec = microdiff_runtime::SampleRequest {
            seed: u64::from(i % 3),
            stream: i,
            class: (i % 10) as u16,
        };
        assert_eq!(
            golden::run(&folded, golden::DIGITS_PROGRAM, spec).unwrap(),
            golden::run(&plain, golden::DIGITS_PROGRAM, spec).unwrap(),
            "{spec:?}"
        );
    }
}
