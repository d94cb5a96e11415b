//! Drawing samples from a blob on the host, with the runtime's batched executor
//! (`microdiff_runtime::batch`: many samples side by side, bit-identical to the device's
//! single-sample sampler). Sample `i` of a request uses noise stream `first + i`, so its bits do
//! not depend on how many samples are drawn, on the thread count or on the CPU.

use std::path::Path;

use microdiff_runtime::batch::{self, BatchModel, Options};
use microdiff_runtime::{Model, SampleRequest};

/// Why samples could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// The blob file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The runtime refuses the blob.
    #[error("blob: {0}")]
    Blob(microdiff_runtime::Error),
    /// The blob has no program of that name (or none at all).
    #[error("program {name:?}: {source}")]
    Program {
        /// The name asked for.
        name: String,
        /// The runtime's answer.
        source: microdiff_runtime::Error,
    },
    /// More samples than memory holds.
    #[error("{n} samples of {len} values do not fit in this machine's memory")]
    TooMany {
        /// Samples asked for.
        n: usize,
        /// Values per sample.
        len: usize,
    },
    /// A noise stream index past `u32`.
    #[error("sample {0}: stream index past 2^32")]
    Stream(usize),
    /// The sampler failed on one sample (e.g. a non-finite output).
    #[error("sampling: {}{error}", sample.map(|i| format!("sample {i}: ")).unwrap_or_default())]
    Sampler {
        /// Which sample, when known.
        sample: Option<usize>,
        /// The runtime's error.
        error: microdiff_runtime::Error,
    },
}

/// Reads a blob (at most [`crate::files::MAX_BLOB_BYTES`]), checks it parses, and names the
/// program to run: `program`, or the blob's first one.
pub fn open(path: &Path, program: Option<&str>) -> Result<(Vec<u8>, String), SampleError> {
    let bytes =
        crate::files::read_limited(path, crate::files::MAX_BLOB_BYTES).map_err(|source| {
            SampleError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let name = match program {
        Some(p) => p.to_string(),
        None => first_program(&bytes)?,
    };
    Ok((bytes, name))
}

/// The name of the blob's first program (the one `sample` and `eval` run by default).
pub fn first_program(blob: &[u8]) -> Result<String, SampleError> {
    let model = Model::parse(blob).map_err(SampleError::Blob)?;
    let first = model
        .programs()
        .get(0)
        .map_err(|source| SampleError::Program {
            name: "(the first)".into(),
            source,
        })?;
    Ok(first.name().to_string())
}

/// Draws `n` samples of `class` (noise streams `first..first + n`, below 2³²) from `program`,
/// in data units, with the runtime's batched executor on rayon's thread count. `progress` is
/// called with the number of samples finished so far, a few times along the way.
pub fn draw(
    blob: &[u8],
    program: &str,
    class: u16,
    n: usize,
    seed: u64,
    first: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<f32>, SampleError> {
    let model = Model::parse(blob).map_err(SampleError::Blob)?;
    let p = model
        .program(program)
        .map_err(|source| SampleError::Program {
            name: program.to_string(),
            source,
        })?;
    let d = model.data_len();
    let too_many = || SampleError::TooMany { n, len: d };
    let len = n
        .checked_mul(d)
        .filter(|&len| fits_in_memory(len.saturating_mul(4).saturating_add(n.saturating_mul(16))))
        .ok_or_else(too_many)?;
    let mut out: Vec<f32> = Vec::new();
    out.try_reserve_exact(len).map_err(|_| too_many())?;
    out.resize(len, 0.0);
    let specs = (0..n)
        .map(|i| {
            let stream = first
                .checked_add(i)
                .and_then(|s| u32::try_from(s).ok())
                .ok_or(SampleError::Stream(i))?;
            Ok(SampleRequest {
                seed,
                stream,
                class,
            })
        })
        .collect::<Result<Vec<_>, SampleError>>()?;
    let bm = BatchModel::new(&model).map_err(SampleError::Blob)?;
    let options = Options::threads(rayon::current_num_threads());
    // Chunks only for progress: each sample's bits do not depend on them.
    let chunk = options.threads.max(1) * batch::MAX_BLOCK * 8;
    let mut done = 0;
    for (k, (specs, out)) in specs
        .chunks(chunk)
        .zip(out.chunks_mut(chunk * d.max(1)))
        .enumerate()
    {
        bm.sample(p, specs, out, options)
            .map_err(|e| SampleError::Sampler {
                sample: e.sample.map(|i| k * chunk + i),
                error: e.error,
            })?;
        done += specs.len();
        progress(done);
    }
    Ok(out)
}

/// `per_class` samples of each class `0..classes`, class-major, with their classes; sample
/// streams continue across classes (class `c` starts at `c · per_class`).
pub fn per_class(
    blob: &[u8],
    program: &str,
    classes: u16,
    per_class: usize,
    seed: u64,
    progress: &dyn Fn(usize),
) -> Result<(Vec<f32>, Vec<u16>), SampleError> {
    let y: Vec<u16> = (0..classes)
        .flat_map(|c| std::iter::repeat_n(c, per_class))
        .collect();
    Ok((with_classes(blob, program, &y, seed, progress)?, y))
}

/// One sample per entry of `classes` (row `i` of the result is of class `classes[i]`). Noise
/// streams go class by class in increasing class order — the samples of class `c` take
/// consecutive streams after all those of smaller classes, in the order they appear in
/// `classes` — so a row's bits depend on the class counts, not on how the classes are
/// interleaved. ([`per_class`] is the class-major case.)
pub fn with_classes(
    blob: &[u8],
    program: &str,
    classes: &[u16],
    seed: u64,
    progress: &dyn Fn(usize),
) -> Result<Vec<f32>, SampleError> {
    let d = Model::parse(blob).map_err(SampleError::Blob)?.data_len();
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by_key(|&i| classes[i]); // stable: appearance order within a class
    let mut out = Vec::new();
    let n = classes.len();
    out.try_reserve_exact(n.saturating_mul(d))
        .map_err(|_| SampleError::TooMany { n, len: d })?;
    out.resize(n * d, 0.0);
    let mut first = 0;
    for group in order.chunk_by(|&i, &j| classes[i] == classes[j]) {
        let c = classes[group[0]];
        let x = draw(blob, program, c, group.len(), seed, first, &|k| {
            progress(first + k)
        })?;
        for (&row, sample) in group.iter().zip(x.chunks_exact(d.max(1))) {
            out[row * d..(row + 1) * d].copy_from_slice(sample);
        }
        first += group.len();
    }
    Ok(out)
}

/// Samples far outside the training data: values more than [`FAR`] model-space units (standard
/// deviations of standardised data; half-ranges of the digits) from the data's centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FarOut {
    /// Values beyond [`FAR`].
    pub values: usize,
    /// Values looked at.
    pub of: usize,
    /// The largest distance, in model-space units.
    pub max: f32,
}

/// How far from the data's centre, in model-space units, a value is "far out".
pub const FAR: f32 = 10.0;

/// Binary units per value of an RBM blob that samples a thermometer code (`microdiff train
/// --objective rbm --levels L`; docs/zoo.md): its sample shape is the data's, `data_shape`,
/// with `L − 1` appended, and a value is the sum of its units' outputs ([`sum_units`]). 1 for
/// every other blob (a two-level RBM's shape is the data's own).
pub fn thermometer_units(model: &Model<'_>, data_shape: &[usize]) -> usize {
    let meta = model.meta();
    let shape = meta.shape.get(..usize::from(meta.rank)).unwrap_or(&[]);
    match shape.split_last() {
        Some((&k, lead))
            if meta.objective == microdiff_runtime::blob::meta::Objective::Rbm
                && k >= 2
                && lead
                    .iter()
                    .map(|&d| usize::from(d))
                    .eq(data_shape.iter().copied()) =>
        {
            usize::from(k)
        }
        _ => 1,
    }
}

/// Samples of `units` outputs per value back to values: each group of `units` summed (the
/// identity for 1).
pub fn sum_units(x: Vec<f32>, units: usize) -> Vec<f32> {
    if units <= 1 {
        return x;
    }
    x.chunks(units).map(|g| g.iter().sum()).collect()
}

/// The values of `samples` (data units) far from the data `model`'s normalisation describes,
/// or `None` when fewer than one in a thousand are (a sign that the model or the sampler is
/// broken, e.g. a network narrower than the data, or an unclipped deterministic sampler).
pub fn far_out(model: &Model<'_>, samples: &[f32]) -> Option<FarOut> {
    let meta = model.meta();
    let d = model.data_len().max(1);
    let mut far = FarOut {
        values: 0,
        of: samples.len(),
        max: 0.0,
    };
    for (k, &v) in samples.iter().enumerate() {
        let offset = meta.to_data_units(k % d, 0.0);
        let scale = meta.to_data_units(k % d, 1.0) - offset;
        let x = ((v - offset) / scale).abs();
        // NaN counts: a sample that is not a number is as far out as one can be.
        if x.is_nan() || x > FAR {
            far.values += 1;
            far.max = if x.is_nan() {
                f32::INFINITY
            } else {
                far.max.max(x)
            };
        }
    }
    (far.values > 0 && far.values * 1000 >= far.of).then_some(far)
}

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
