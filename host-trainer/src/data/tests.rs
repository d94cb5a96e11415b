//! Tests of the data module: toy sets, digits, split, loaders (round trips and every error),
//! normalizer.

use std::path::{Path, PathBuf};

use super::*;

/// Samples drawn for the moment checks: the standard error of a variance estimate is about
/// `sqrt(2/n)` of it (≈ 2 % here, more for the heavy-tailed sets), so the tolerances below are
/// several standard errors wide and the test stays fast.
const MOMENT_N: usize = 5000;
/// Allowed |mean| per coordinate (data has unit std; 5000 samples give ≈ 0.014 standard error).
const MEAN_TOL: f64 = 0.08;
/// Allowed deviation of the average per-coordinate variance from 1.
const VAR_TOL: f64 = 0.1;

/// A fresh, empty directory under the system temp dir, unique to this process and `tag`.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("microdiff-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts `err`'s message names `path` (its file name at least).
fn assert_names(err: &DataError, path: &Path) {
    let msg = err.to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        msg.contains(&*name),
        "error `{msg}` does not name {}",
        path.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Toy sets.

#[test]
fn toy_names_round_trip() {
    for t in Toy::ALL {
        assert_eq!(t.to_string().parse::<Toy>().unwrap(), t);
        assert_eq!(t.to_string().to_uppercase().parse::<Toy>().unwrap(), t);
    }
    assert_eq!("moons".parse::<Toy>().unwrap(), Toy::TwoMoons);
    let err = "spiral".parse::<Toy>().unwrap_err();
    assert!(err.to_string().contains("8gaussians"), "{err}");
    assert_eq!(
        Toy::names(),
        "moons, 8gaussians, swissroll, checkerboard, rings"
    );
}

#[test]
fn toy_sets_are_deterministic_seeded_and_prefix_stable() {
    for t in Toy::ALL {
        let a = toy(t, 300, 7);
        assert_eq!(a.len(), 300);
        assert_eq!((a.dim, a.shape.as_slice()), (2, &[2][..]));
        assert!(a.labels.is_none() && a.classes == 0);
        assert!(a.x.iter().all(|v| v.is_finite()));
        assert_eq!(a.x, toy(t, 300, 7).x, "{t}: same seed, same data");
        assert_ne!(a.x, toy(t, 300, 8).x, "{t}: another seed, other data");
        assert_eq!(toy(t, 100, 7).x, a.x[..200], "{t}: shorter run is a prefix");
        a.check().unwrap();
    }
}

#[test]
fn toy_sets_have_unit_scale() {
    for t in Toy::ALL {
        let d = toy(t, MOMENT_N, 1);
        let n = d.len() as f64;
        let mut mean = [0.0f64; 2];
        for r in d.x.chunks_exact(2) {
            mean[0] += f64::from(r[0]) / n;
            mean[1] += f64::from(r[1]) / n;
        }
        let mut var = [0.0f64; 2];
        for r in d.x.chunks_exact(2) {
            var[0] += (f64::from(r[0]) - mean[0]).powi(2) / n;
            var[1] += (f64::from(r[1]) - mean[1]).powi(2) / n;
        }
        let avg = (var[0] + var[1]) / 2.0;
        assert!(
            mean.iter().all(|m| m.abs() < MEAN_TOL),
            "{t}: mean {mean:?}"
        );
        assert!((avg - 1.0).abs() < VAR_TOL, "{t}: mean variance {avg}");
        // Isotropic scaling keeps shapes, so single coordinates may differ, but not wildly.
        assert!(
            var.iter().all(|&v| (0.3..1.7).contains(&v)),
            "{t}: variances {var:?}"
        );
    }
}

#[test]
fn toy_labels_match_components() {
    for t in Toy::ALL {
        let d = toy_labelled(t, 2000, 3);
        d.check().unwrap();
        assert_eq!(
            d.x,
            toy(t, 2000, 3).x,
            "{t}: labels do not change the points"
        );
        assert_eq!(d.classes, t.classes());
        if t.classes() > 0 {
            let counts = d.class_counts();
            let expected = 2000 / t.classes();
            // Uniform components: every class within 30 % of its expected count.
            assert!(
                counts
                    .iter()
                    .all(|&c| c.abs_diff(expected) < expected * 3 / 10),
                "{t}: {counts:?}"
            );
        }
    }
    // Eight Gaussians: points are nearest their own centre, except the ~0.1 % that the noise
    // (std 1/8 of the radius, 3 std to the halfway line) carries over.
    let d = toy_labelled(Toy::EightGaussians, 1000, 4);
    let own = (0..d.len())
        .filter(|&i| {
            let r = d.row(i);
            let angle = f64::from(r[1])
                .atan2(f64::from(r[0]))
                .rem_euclid(std::f64::consts::TAU);
            let nearest = ((angle / (std::f64::consts::PI / 4.0)).round() as u16) % 8;
            nearest == d.labels.as_ref().unwrap()[i]
        })
        .count();
    assert!(own >= 990, "{own} of 1000 nearest their own centre");
    // `component` is that classifier (and the rings' nearest radius): it agrees with the
    // labels as often, and refuses what it cannot classify.
    for (t, at_least) in [(Toy::EightGaussians, 990), (Toy::Rings, 990)] {
        let d = toy_labelled(t, 1000, 4);
        let labels = d.labels.as_ref().unwrap();
        let agree = (0..d.len())
            .filter(|&i| t.component(d.row(i)[0], d.row(i)[1]) == Some(labels[i]))
            .count();
        assert!(agree >= at_least, "{t}: {agree} of 1000");
    }
    assert_eq!(Toy::EightGaussians.component(f32::NAN, 0.0), None);
    assert_eq!(Toy::TwoMoons.component(0.0, 0.0), None);
    // Checkerboard: points lie on dark squares (column + row even, in the reference grid).
    let d = toy(Toy::Checkerboard, 1000, 5);
    let unit = (64.0f64 / 12.0).sqrt(); // reference units per unit of output
    for r in d.x.chunks_exact(2) {
        let (cx, cy) = (
            (f64::from(r[0]) * unit / 2.0).floor() as i64,
            (f64::from(r[1]) * unit / 2.0).floor() as i64,
        );
        assert_eq!((cx + cy).rem_euclid(2), 0, "point {r:?} on a light square");
    }
}

// ---------------------------------------------------------------------------------------------
// Digits and the split.

#[test]
fn digits_have_the_uci_contents() {
    let d = digits().unwrap();
    assert_eq!(d.len(), 1797);
    assert_eq!(
        (d.dim, d.shape.as_slice(), d.classes),
        (64, &[8, 8][..], 10)
    );
    assert_eq!(
        d.class_counts(),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert!(
        d.x.iter()
            .all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0)
    );
    // The first image of the file is a 0 (the scikit-learn `load_digits().images[0]`).
    assert_eq!(d.labels.as_ref().unwrap()[0], 0);
    assert_eq!(&d.row(0)[..8], &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);
}

#[test]
fn digits_split_is_fixed_stratified_and_disjoint() {
    let (train, test) = digits_split().unwrap();
    assert_eq!((train.len(), test.len()), (1438, 359));
    // round(0.2 · n_c) per class.
    let expected: Vec<usize> = DIGITS_CLASS_COUNTS
        .iter()
        .map(|&c| (0.2 * c as f64).round() as usize)
        .collect();
    assert_eq!(test.class_counts(), expected);
    let (train2, test2) = digits_split().unwrap();
    assert_eq!((train.x, test.x.clone()), (train2.x, test2.x));
    // It is exactly the documented rule (whose partition property `split_partitions_indices`
    // checks on index data).
    let all = digits().unwrap();
    let (a, b) = all.split(0.2, DIGITS_SPLIT_SEED);
    assert_eq!(a.len() + b.len(), all.len());
    assert_eq!(b.x, test.x);
}

#[test]
fn split_partitions_indices() {
    // Use sample indices as the data so the partition can be read back exactly.
    let n = 1000;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let labels: Vec<u16> = (0..n).map(|i| (i % 3) as u16).collect();
    let ds = Dataset::new("idx", x, vec![1], Some(labels), 3).unwrap();
    let (train, test) = ds.split(0.25, 42);
    let mut seen: Vec<usize> = train.x.iter().chain(&test.x).map(|&v| v as usize).collect();
    assert!(
        train.x.windows(2).all(|w| w[0] < w[1]) && test.x.windows(2).all(|w| w[0] < w[1]),
        "order kept"
    );
    seen.sort_unstable();
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "disjoint and complete");
    // Stratified: round(0.25 · 334) = 84 (83.5 rounds up), round(0.25 · 333) = 83.
    assert_eq!(test.class_counts(), [84, 83, 83]);
    assert_ne!(
        ds.split(0.25, 43).1.x,
        test.x,
        "another seed, another split"
    );
    // Unlabelled, and the edges.
    let un = Dataset::new("u", (0..10).map(|i| i as f32).collect(), vec![1], None, 0).unwrap();
    assert_eq!(un.split(0.3, 0).1.len(), 3);
    assert_eq!(un.split(0.0, 0).1.len(), 0);
    assert_eq!(un.split(1.0, 0).0.len(), 0);
}

#[test]
fn subset_and_check() {
    let d = toy_labelled(Toy::TwoMoons, 10, 0);
    let s = d.subset(&[3, 3, 0]);
    assert_eq!(s.len(), 3);
    assert_eq!(s.row(0), d.row(3));
    assert_eq!(s.row(2), d.row(0));
    assert_eq!(s.labels.as_ref().unwrap()[2], d.labels.as_ref().unwrap()[0]);
    assert!(Dataset::new("bad", vec![1.0; 3], vec![2], None, 0).is_err());
    assert!(Dataset::new("bad", vec![1.0; 2], vec![2], Some(vec![5]), 3).is_err());
    assert!(Dataset::new("bad", vec![1.0; 2], vec![2], None, 3).is_err());
}

// ---------------------------------------------------------------------------------------------
// Loaders: round trips.

#[test]
fn csv_round_trip_with_header_and_labels() {
    let dir = temp_dir("csv-ok");
    let p = dir.join("a.csv");
    std::fs::write(
        &p,
        "# comment\nx, y, label\n1.5, -2, 1\n\n3e2, 4, 0\n\"5\", 6.25, 2\n",
    )
    .unwrap();
    let d = load(&p).unwrap();
    assert_eq!(d.x, [1.5, -2.0, 300.0, 4.0, 5.0, 6.25]);
    assert_eq!(
        (d.dim, d.labels.as_deref(), d.classes),
        (2, Some(&[1, 0, 2][..]), 3)
    );
    assert_eq!(d.name, "a.csv");
    // No header: every column is a value; other separators.
    let p = dir.join("b.CSV");
    std::fs::write(&p, "1;2;3\n4;5;6\n").unwrap();
    let d = load(&p).unwrap();
    assert_eq!((d.len(), d.dim, d.labels.is_none()), (2, 3, true));
    let p = dir.join("c.csv");
    std::fs::write(&p, "1 2\n3   4\n").unwrap();
    assert_eq!(load(&p).unwrap().x, [1.0, 2.0, 3.0, 4.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A `.npy` file: header for `descr` and `shape` (a Python tuple), then `data`.
fn npy_bytes(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let prefix = if version == 1 { 10 } else { 12 };
    let mut header = dict.into_bytes();
    // Pad with spaces to a multiple of 64 bytes including the prefix, newline last.
    while (prefix + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_round_trip_dtypes_orders_shapes() {
    let dir = temp_dir("npy-ok");
    let vals = [1.0f32, -2.5, 3.0, 4.0, 5.0, 6.0];
    let cases: Vec<(&str, &str, Vec<u8>, u8)> = vec![
        (
            "f4",
            "<f4",
            vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
            1,
        ),
        (
            "f8",
            "<f8",
            vals.iter()
                .flat_map(|&v| f64::from(v).to_le_bytes())
                .collect(),
            2,
        ),
        (
            "be",
            ">f4",
            vals.iter().flat_map(|v| v.to_be_bytes()).collect(),
            3,
        ),
    ];
    for (tag, descr, data, version) in cases {
        let p = dir.join(format!("{tag}.npy"));
        std::fs::write(&p, npy_bytes(version, descr, false, "(3, 2)", &data)).unwrap();
        let d = load(&p).unwrap();
        assert_eq!((d.len(), d.dim, d.x.as_slice()), (3, 2, &vals[..]), "{tag}");
    }
    // Integers, sign-extended; 1-D gives one value per sample.
    let p = dir.join("i2.npy");
    let ints: Vec<u8> = [-3i16, 7, 300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&p, npy_bytes(1, "<i2", false, "(3,)", &ints)).unwrap();
    let d = load(&p).unwrap();
    assert_eq!((d.dim, d.x.as_slice()), (1, &[-3.0, 7.0, 300.0][..]));
    let p = dir.join("u1.npy");
    std::fs::write(
        &p,
        npy_bytes(1, "|u1", false, "(2, 2, 2)", &[0, 1, 2, 3, 4, 5, 6, 255]),
    )
    .unwrap();
    let d = load(&p).unwrap();
    assert_eq!(
        (d.len(), d.shape.as_slice(), d.x[7]),
        (2, &[2, 2][..], 255.0)
    );
    // Fortran order: column-major (3, 2) holding [[1, 2], [3, 4], [5, 6]].
    let p = dir.join("fortran.npy");
    let col_major: Vec<u8> = [1.0f32, 3.0, 5.0, 2.0, 4.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&p, npy_bytes(1, "<f4", true, "(3, 2)", &col_major)).unwrap();
    assert_eq!(load(&p).unwrap().x, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

fn write_gray(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
        .save(path)
        .unwrap();
}

#[test]
fn png_folder_round_trip_flat_and_labelled() {
    let dir = temp_dir("png-ok");
    let flat = dir.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    write_gray(&flat.join("b.png"), 3, 2, |x, y| (10 * x + y) as u8);
    write_gray(&flat.join("a.png"), 3, 2, |_, _| 200);
    std::fs::write(flat.join("notes.txt"), "ignored").unwrap();
    let d = load(&flat).unwrap();
    assert_eq!(
        (d.len(), d.shape.as_slice(), d.labels.is_none()),
        (2, &[2, 3][..], true)
    );
    assert_eq!(d.row(0), [200.0; 6], "a.png first (sorted by name)");
    assert_eq!(d.row(1), [0.0, 10.0, 20.0, 1.0, 11.0, 21.0], "row-major");

    // Labelled by integer subdirectory names: the integer is the label.
    let lab = dir.join("lab");
    for (digit, n) in [(0, 2), (3, 1)] {
        let sub = lab.join(digit.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        for k in 0..n {
            write_gray(&sub.join(format!("{k}.png")), 2, 2, |_, _| digit as u8);
        }
    }
    let d = load(&lab).unwrap();
    assert_eq!((d.labels.as_deref(), d.classes), (Some(&[0, 0, 3][..]), 4));
    // Named subdirectories: sorted position; an RGB file with gray pixels is accepted.
    let named = dir.join("named");
    for c in ["cat", "ant"] {
        std::fs::create_dir_all(named.join(c)).unwrap();
    }
    write_gray(&named.join("cat/x.png"), 2, 2, |_, _| 9);
    image::RgbImage::from_pixel(2, 2, image::Rgb([7, 7, 7]))
        .save(named.join("ant/y.png"))
        .unwrap();
    let d = load(&named).unwrap();
    assert_eq!((d.labels.as_deref(), d.classes), (Some(&[0, 1][..]), 2));
    assert_eq!(d.x, [7.0, 7.0, 7.0, 7.0, 9.0, 9.0, 9.0, 9.0]);
    // 16-bit gray levels come back on the 8-bit scale.
    let deep = dir.join("deep");
    std::fs::create_dir_all(&deep).unwrap();
    image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(1, 1, image::Luma([257 * 40]))
        .save(deep.join("z.png"))
        .unwrap();
    assert_eq!(load(&deep).unwrap().x, [40.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Loaders: every error names its file and has the right variant.

#[test]
fn csv_errors() {
    let dir = temp_dir("csv-err");
    type IsExpected = fn(&DataError) -> bool;
    let cases: [(&str, &str, IsExpected); 6] = [
        ("ragged.csv", "1,2\n3,4,5\n", |e| {
            matches!(
                e,
                DataError::Ragged {
                    line: 2,
                    expected: 2,
                    found: 3,
                    ..
                }
            )
        }),
        ("nan.csv", "a,b\n1,2\n3,nan\n", |e| {
            matches!(
                e,
                DataError::NonFinite {
                    sample: 1,
                    line: Some(3),
                    col: 1,
                    ..
                }
            )
        }),
        ("inf.csv", "1,2\n-inf,2\n", |e| {
            matches!(
                e,
                DataError::NonFinite {
                    sample: 1,
                    col: 0,
                    ..
                }
            )
        }),
        ("empty.csv", "", |e| matches!(e, DataError::Empty { .. })),
        ("header-only.csv", "# just a comment\nx,y\n", |e| {
            matches!(e, DataError::Empty { .. })
        }),
        ("word.csv", "1,2\n3,four\n", |e| {
            matches!(
                e,
                DataError::Parse {
                    line: 2,
                    col: 2,
                    ..
                }
            )
        }),
    ];
    for (name, text, ok) in cases {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let err = load(&p).unwrap_err();
        assert!(ok(&err), "{name}: wrong error {err:?}");
        assert_names(&err, &p);
    }
    let p = dir.join("label.csv");
    std::fs::write(&p, "x,class\n1,2\n1,-1\n").unwrap();
    let err = load(&p).unwrap_err();
    assert!(
        matches!(err, DataError::BadLabel { line: 3, .. }),
        "{err:?}"
    );
    assert_names(&err, &p);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn npy_errors() {
    let dir = temp_dir("npy-err");
    let f4 = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut magic = npy_bytes(1, "<f4", false, "(1,)", &f4(&[1.0]));
    magic[1] = b'X';
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic.npy", magic, "magic"),
        (
            "short.npy",
            npy_bytes(1, "<f4", false, "(2, 2)", &f4(&[1.0, 2.0])),
            "data bytes",
        ),
        (
            "dtype.npy",
            npy_bytes(1, "<c8", false, "(1,)", &[0; 8]),
            "dtype",
        ),
        (
            "version.npy",
            npy_bytes(1, "<f4", false, "(1,)", &f4(&[1.0]))
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 6 { 9 } else { b })
                .collect(),
            "version",
        ),
        ("tiny.npy", b"\x93NU".to_vec(), "magic"),
        (
            "scalar.npy",
            npy_bytes(1, "<f4", false, "()", &f4(&[1.0])),
            "0-d",
        ),
    ];
    for (name, bytes, what) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = load(&p).unwrap_err();
        assert!(
            matches!(&err, DataError::BadNpy { reason, .. } if reason.contains(what)),
            "{name}: {err:?}"
        );
        assert_names(&err, &p);
    }
    let p = dir.join("nan.npy");
    std::fs::write(
        &p,
        npy_bytes(1, "<f4", false, "(2, 2)", &f4(&[1.0, 2.0, 3.0, f32::NAN])),
    )
    .unwrap();
    let err = load(&p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NonFinite {
                sample: 1,
                col: 1,
                line: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &p);
    let p = dir.join("zero.npy");
    std::fs::write(&p, npy_bytes(1, "<f4", false, "(0, 2)", &[])).unwrap();
    assert!(matches!(load(&p).unwrap_err(), DataError::Empty { .. }));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn png_folder_errors() {
    let dir = temp_dir("png-err");
    let sizes = dir.join("sizes");
    std::fs::create_dir_all(&sizes).unwrap();
    write_gray(&sizes.join("a.png"), 4, 4, |_, _| 0);
    write_gray(&sizes.join("b.png"), 4, 5, |_, _| 0);
    let err = load(&sizes).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ImageSize {
                expected: (4, 4),
                found: (4, 5),
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &sizes.join("b.png"));

    let colour = dir.join("colour");
    std::fs::create_dir_all(&colour).unwrap();
    image::RgbImage::from_fn(2, 2, |x, _| image::Rgb([9, 9, if x == 1 { 10 } else { 9 }]))
        .save(colour.join("c.png"))
        .unwrap();
    let err = load(&colour).unwrap_err();
    assert!(matches!(err, DataError::NotGrayscale { .. }), "{err:?}");
    assert_names(&err, &colour.join("c.png"));

    let mixed = dir.join("mixed");
    std::fs::create_dir_all(mixed.join("0")).unwrap();
    write_gray(&mixed.join("a.png"), 2, 2, |_, _| 0);
    let err = load(&mixed).unwrap_err();
    assert!(matches!(err, DataError::MixedLayout { .. }), "{err:?}");
    assert_names(&err, &mixed);

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = load(&empty).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert_names(&err, &empty);

    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("x.png"), b"not a png").unwrap();
    let err = load(&broken).unwrap_err();
    assert!(matches!(err, DataError::Image { .. }), "{err:?}");
    assert_names(&err, &broken.join("x.png"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unknown_extension_and_missing_file() {
    let dir = temp_dir("other");
    let p = dir.join("data.parquet");
    std::fs::write(&p, "x").unwrap();
    let err = load(&p).unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err:?}");
    assert_names(&err, &p);
    let p = dir.join("missing.csv");
    let err = load(&p).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert_names(&err, &p);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Normalizer.

#[test]
fn normalizer_round_trips_and_standardizes() {
    let d = digits().unwrap();
    let n = Normalizer::digits();
    assert_eq!(
        (n.scale.as_slice(), n.offset.as_slice()),
        (&[8.0][..], &[8.0][..])
    );
    let mut x = vec![0.0, 8.0, 16.0];
    n.to_model(&mut x);
    assert_eq!(x, [-1.0, 0.0, 1.0]);
    n.to_data(&mut x);
    assert_eq!(x, [0.0, 8.0, 16.0]);

    // Per-dimension: mean 0, std 1 where the pixel varies; constant pixels only centred.
    let s = Normalizer::standardize(&d);
    assert!(s.fits(64) && !s.fits(63));
    let m = s.dataset_to_model(&d);
    for j in 0..64 {
        let col: Vec<f64> = (0..m.len()).map(|i| f64::from(m.row(i)[j])).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
        assert!(mean.abs() < 1e-4, "pixel {j}: mean {mean}");
        assert!(
            (var - 1.0).abs() < 1e-3 || var == 0.0,
            "pixel {j}: var {var}"
        );
    }
    let mut back = m.x.clone();
    s.to_data(&mut back);
    let err = back
        .iter()
        .zip(&d.x)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(err < 1e-4, "round trip error {err}");

    // Isotropic: one scale, aspect ratio kept.
    let t = toy(Toy::TwoMoons, 1000, 0);
    let iso = Normalizer::standardize_isotropic(&t);
    assert_eq!(iso.scale[0], iso.scale[1]);
    assert!(Normalizer::identity().is_empty());
    let json = serde_json::to_string(&iso).unwrap();
    assert_eq!(serde_json::from_str::<Normalizer>(&json).unwrap(), iso);
}

#[test]
fn npy_labels_come_from_a_labels_file_beside_it() {
    let dir = temp_dir("npy-labels");
    let x: Vec<u8> = (0..6).flat_map(|v| (v as f32).to_le_bytes()).collect();
    let p = dir.join("points.npy");
    std::fs::write(&p, npy_bytes(1, "<f4", false, "(3, 2)", &x)).unwrap();
    assert!(load(&p).unwrap().labels.is_none());
    let labels: Vec<u8> = [2i64, 0, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(
        dir.join("points.labels.npy"),
        npy_bytes(1, "<i8", false, "(3,)", &labels),
    )
    .unwrap();
    let d = load(&p).unwrap();
    assert_eq!(
        (d.labels.as_deref(), d.classes),
        (Some(&[2u16, 0, 5][..]), 6)
    );
    // One label per sample, integers only.
    let short: Vec<u8> = [1i64, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(
        dir.join("points.labels.npy"),
        npy_bytes(1, "<i8", false, "(2,)", &short),
    )
    .unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("one integer per sample"), "{e}");
    let frac: Vec<u8> = [1.5f32, 0.0, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(
        dir.join("points.labels.npy"),
        npy_bytes(1, "<f4", false, "(3,)", &frac),
    )
    .unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("not an integer"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
