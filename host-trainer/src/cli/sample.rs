//! `microdiff sample`: samples from a blob, drawn on the host by the runtime
//! ([`microdiff_trainer::sampling`]: bit-identical to the device), written as CSV or a picture.

use std::io::Write;
use std::path::PathBuf;

use microdiff_runtime::Model;
use microdiff_trainer::data::Source;
use microdiff_trainer::{sampling, viz};

use super::{CliError, msg};

/// `microdiff sample` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blob.
    blob: PathBuf,
    /// Program name (default: the blob's first program).
    #[arg(long)]
    program: Option<String>,
    /// Samples to draw (per class with --all-classes).
    #[arg(long, short, default_value_t = 1000)]
    n: usize,
    /// Class to condition on (class-conditional models).
    #[arg(long, default_value_t = 0)]
    class: u16,
    /// Draw `n` samples of every class (rows of the picture, one per class).
    #[arg(long)]
    all_classes: bool,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CSV of the samples in data units (one per line; a `class` column with --all-classes).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// PNG of the samples: a labelled grid for images (any height × width), a scatter plot
    /// for 2-D points (a colour per class), the two principal components for other dimensions.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Data drawn under the samples in --png (2-D: grey points; others: the projection is
    /// fitted on it; images: its range sets black and white): a built-in set, `digits`, or
    /// your CSV / NPY file or PNG folder.
    #[arg(long, requires = "png")]
    data: Option<String>,
    /// Values drawn black and white in an image grid, as LO:HI [default: the --data range,
    /// else the samples' 0.5 %–99.5 % range].
    #[arg(long, requires = "png", value_parser = parse_range, allow_hyphen_values = true)]
    png_range: Option<(f32, f32)>,
}

/// `LO:HI` with finite `LO < HI`.
fn parse_range(s: &str) -> Result<(f32, f32), String> {
    let bad = || format!("{s:?}: expected LO:HI with finite LO < HI, e.g. 0:255");
    let (lo, hi) = s.split_once(':').ok_or_else(bad)?;
    let (lo, hi): (f32, f32) = (
        lo.parse().map_err(|_| bad())?,
        hi.parse().map_err(|_| bad())?,
    );
    if lo.is_finite() && hi.is_finite() && lo < hi {
        Ok((lo, hi))
    } else {
        Err(bad())
    }
}

pub fn run(a: Args) -> Result<(), CliError> {
    let (bytes, program) = sampling::open(&a.blob, a.program.as_deref())?;
    let model = Model::parse(&bytes).map_err(msg(&a.blob.display().to_string()))?;
    if a.n == 0 {
        return Err(CliError::Msg("-n 0: nothing to draw".into()));
    }
    if !a.all_classes && a.class != 0 && model.meta().classes == 0 {
        return Err(CliError::Msg(format!(
            "--class {}: the model is unconditional (it has no classes)",
            a.class
        )));
    }
    if let Some(path) = &a.png {
        super::check_png_path(path)?;
        if model.data_len() < 2 {
            return Err(CliError::Msg(
                "--png: samples of one value have no picture; write them with --csv".into(),
            ));
        }
    }
    // The reference data before the sampling, so that a bad --data costs no time. With it, a
    // thermometer-coded RBM's units are summed back to values.
    let (reference, units) = match &a.data {
        Some(spec) => {
            let ds = Source::parse(spec)
                .and_then(|src| src.load(2000, 1))
                .map_err(|e| CliError::Msg(format!("--data {e}")))?;
            let units = sampling::thermometer_units(&model, &ds.shape);
            if ds.dim.checked_mul(units) != Some(model.data_len()) {
                return Err(CliError::Msg(format!(
                    "--data {spec}: {} values per example, the model makes {}",
                    ds.dim,
                    model.data_len()
                )));
            }
            (ds.x, units)
        }
        None => (Vec::new(), 1),
    };
    let classes: Vec<u16> = if a.all_classes {
        if model.meta().classes == 0 {
            return Err(CliError::Msg(
                "--all-classes: the model is unconditional".into(),
            ));
        }
        (0..model.meta().classes).collect()
    } else {
        vec![a.class]
    };
    // Sample k of the whole run uses noise stream k: a u32.
    if a.n
        .checked_mul(classes.len())
        .is_none_or(|total| total > 1 << 32)
    {
        return Err(CliError::Msg(format!(
            "-n {} for {} class(es): the stream index past 2^32 cannot be drawn",
            a.n,
            classes.len()
        )));
    }
    let d = model.data_len() / units;
    let started = std::time::Instant::now();
    let mut all = Vec::new();
    let evals = model
        .program(&program)
        .map_or(1, |p| usize::from(p.evals.max(1)));
    let total = a.n * classes.len();
    let bar = super::sample_progress(total, evals)?;
    for (k, &c) in classes.iter().enumerate() {
        let first = k.saturating_mul(a.n);
        let xs = sampling::draw(&bytes, &program, c, a.n, a.seed, first, &|i| {
            bar.set_position((first + i) as u64)
        })?;
        all.push((c, sampling::sum_units(xs, units)));
    }
    bar.finish_and_clear();
    eprintln!(
        "microdiff: {} samples with {program} in {:.2} s",
        a.n * classes.len(),
        started.elapsed().as_secs_f64()
    );
    // A sum of units has no per-unit range to check.
    for (c, xs) in all.iter().filter(|_| units == 1) {
        if let Some(far) = sampling::far_out(&model, xs) {
            let what = if model.meta().classes > 0 {
                format!("the samples of class {c}")
            } else {
                "the samples".into()
            };
            super::warn_far_out(&far, &what);
        }
    }
    if let Some(path) = &a.csv {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(path).map_err(CliError::io(path))?);
        for (c, xs) in &all {
            for row in xs.chunks(d) {
                let line: Vec<String> = row.iter().map(|v| v.to_string()).collect();
                let prefix = if a.all_classes {
                    format!("{c},")
                } else {
                    String::new()
                };
                writeln!(f, "{prefix}{}", line.join(",")).map_err(CliError::io(path))?;
            }
        }
        // The buffer's last bytes go out here: a full disk must be an error, not a short file
        // behind exit code 0 (dropping a BufWriter discards its flush error).
        f.flush().map_err(CliError::io(path))?;
    }
    if let Some(path) = &a.png {
        let mut shape: Vec<usize> = model
            .meta()
            .shape
            .iter()
            .take(usize::from(model.meta().rank))
            .map(|&v| usize::from(v))
            .collect();
        if units > 1 {
            // The units' axis was summed away.
            shape.pop();
        }
        let groups: Vec<(u16, &[f32])> = all.iter().map(|(c, xs)| (*c, &xs[..])).collect();
        let picture = viz::Samples {
            shape: &shape,
            groups: &groups,
            labelled: model.meta().classes > 0,
            reference: &reference,
            value_range: a.png_range,
        };
        viz::samples_png(path, &picture).map_err(msg("png"))?;
    }
    if a.csv.is_none() && a.png.is_none() {
        for (c, xs) in &all {
            for row in xs.chunks(d).take(10) {
                println!("class {c}: {row:?}");
            }
        }
    }
    Ok(())
}
