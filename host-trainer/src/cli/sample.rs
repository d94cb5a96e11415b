//! `microdiff sample`: samples from a blob, drawn by the runtime's batched executor
//! (`microdiff_runtime::batch`: many samples side by side, bit-identical to the device's
//! single-sample sampler). Sample `i` uses noise stream `i`, so its bits do not depend on how
//! many samples are drawn, on the thread count or on the CPU.

use std::io::Write;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use microdiff_runtime::batch::{self, BatchModel, Options};
use microdiff_runtime::{Model, SampleSpec};

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
    /// PNG: a scatter plot for 2-D data, a digit grid for 8×8 data.
    #[arg(long)]
    png: Option<PathBuf>,
}

/// Draws `n` samples of `class` (streams `first..first + n`, which must stay below 2³²) from
/// `program`, in data units, with the runtime's batched executor on rayon's thread count.
pub fn draw(
    blob: &[u8],
    program: &str,
    class: u16,
    n: usize,
    seed: u64,
    first: usize,
) -> Result<Vec<f32>, CliError> {
    let model = Model::parse(blob).map_err(msg("blob"))?;
    let p = model
        .program(program)
        .map_err(msg(&format!("program {program:?}")))?;
    let len = n
        .checked_mul(model.data_len())
        .filter(|&len| fits_in_memory(len.saturating_mul(4).saturating_add(n.saturating_mul(16))))
        .ok_or_else(|| {
            CliError::Msg(format!(
                "{n} samples of {} values do not fit in this machine's memory",
                model.data_len()
            ))
        })?;
    let mut out: Vec<f32> = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| CliError::Msg(format!("{n} samples do not fit in memory")))?;
    out.resize(len, 0.0);
    let specs = (0..n)
        .map(|i| {
            let stream = first
                .checked_add(i)
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| CliError::Msg(format!("sample {i}: stream index past 2^32")))?;
            Ok(SampleSpec {
                seed,
                stream,
                class,
            })
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    let bm = BatchModel::new(&model).map_err(msg("blob"))?;
    let options = Options::threads(rayon::current_num_threads());
    // Chunks only for the progress bar: each sample's bits do not depend on them.
    let chunk = options.threads.max(1) * batch::MAX_BLOCK * 8;
    let bar = if n.saturating_mul(usize::from(p.evals)) >= PROGRESS_MIN_EVALS {
        ProgressBar::new(n as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} samples  {per_sec}  ETA {eta}")
            .map_err(msg("progress bar"))?,
    );
    let d = model.data_len().max(1);
    for (k, (specs, out)) in specs
        .chunks(chunk)
        .zip(out.chunks_mut(chunk * d))
        .enumerate()
    {
        bm.sample(p, specs, out, options).map_err(|e| {
            let at = e.sample.map(|i| format!("sample {}: ", k * chunk + i));
            CliError::Msg(format!("sampling: {}{}", at.unwrap_or_default(), e.error))
        })?;
        bar.inc(specs.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Network evaluations (samples × evaluations per sample) from which `draw` shows progress:
/// about half a second of the digits network on two cores.
const PROGRESS_MIN_EVALS: usize = 100_000;

/// Whether `bytes` more can be allocated without running the machine out of memory: below
/// Linux's `MemAvailable` (the kernel would otherwise overcommit and kill the process when
/// the pages are touched). Elsewhere only the allocator's own refusal guards.
fn fits_in_memory(bytes: usize) -> bool {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    available.is_none_or(|a| bytes <= a)
}

/// Reads a blob and names the program to run: `program`, or the blob's first one.
pub fn open(path: &std::path::Path, program: Option<&str>) -> Result<(Vec<u8>, String), CliError> {
    let bytes =
        microdiff_trainer::files::read_limited(path, microdiff_trainer::files::MAX_BLOB_BYTES)
            .map_err(CliError::io(path))?;
    let model = Model::parse(&bytes).map_err(msg(&path.display().to_string()))?;
    let name = match program {
        Some(p) => p.to_string(),
        None => model
            .programs()
            .get(0)
            .map_err(msg("programs"))?
            .name()
            .to_string(),
    };
    Ok((bytes, name))
}

pub fn run(a: Args) -> Result<(), CliError> {
    let (bytes, program) = open(&a.blob, a.program.as_deref())?;
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
        let d = model.data_len();
        if d != 2 && d != 64 {
            return Err(CliError::Msg(format!(
                "--png: pictures exist for 2-D points and 8x8 digits, not {d} values"
            )));
        }
    }
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
    let d = model.data_len();
    let started = std::time::Instant::now();
    let mut all = Vec::new();
    for (k, &c) in classes.iter().enumerate() {
        all.push((
            c,
            draw(&bytes, &program, c, a.n, a.seed, k.saturating_mul(a.n))?,
        ));
    }
    eprintln!(
        "microdiff: {} samples with {program} in {:.2} s",
        a.n * classes.len(),
        started.elapsed().as_secs_f64()
    );
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
        let flat: Vec<f32> = all.iter().flat_map(|(_, xs)| xs.iter().copied()).collect();
        match d {
            2 => microdiff_trainer::viz::scatter_png(path, &[], &flat, 600).map_err(msg("png"))?,
            64 => microdiff_trainer::viz::digit_grid_png(path, &flat, classes.len(), a.n, 4)
                .map_err(msg("png"))?,
            _ => {
                return Err(CliError::Msg(format!(
                    "--png: pictures exist for 2-D points and 8x8 digits, not {d} values"
                )));
            }
        }
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
