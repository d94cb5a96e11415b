//! NVRTC compilation of the kernel sources of `kernels/cuda` ([`microdiff_kernels::cuda`]) to
//! PTX, with an on-disk cache.
//!
//! * **Options** ([`OPTIONS`]): `--fmad=false --prec-div=true --prec-sqrt=true --std=c++17`
//!   and `--gpu-architecture=compute_XX`. No FMA contraction and IEEE division and square
//!   root are what make the noise kernels draw the CPU's bits and keep the other kernels to the
//!   CPU backend's formulas; the headers ([`microdiff_kernels::cuda::HEADERS`]) are passed to
//!   NVRTC by name, so no include path is read.
//! * **Cache** ([`ptx_for`]): one file per (sha256 of NVRTC's version, the options, the source
//!   and every header; architecture) in [`cache_dir`]. Files are written to a temporary name
//!   and renamed, so a reader never sees half a file; a cached file that lacks an entry point
//!   is ignored and rewritten.
//! * **Never panics when NVRTC is missing**: cudarc loads `libnvrtc` on first use and panics if
//!   it cannot; [`probe`] tries the same library names first (cudarc's `is_culib_present`) and
//!   every entry point here calls it, returning [`NvrtcError::LibraryMissing`].
//!
//! The driver loads each source with `ptx_for(source, Arch::from_compute_capability(..))`.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::{result, sys};
use microdiff_kernels::cuda::{HEADERS, Source};
use sha2::{Digest, Sha256};

/// The options every source is compiled with (the architecture option is added per call).
pub const OPTIONS: &[&str] = &[
    "--fmad=false",
    "--prec-div=true",
    "--prec-sqrt=true",
    "--std=c++17",
];

/// A virtual GPU architecture, `compute_XY` (compute capability X.Y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch {
    major: u32,
    minor: u32,
}

impl Arch {
    /// Volta (sm_70), the oldest architecture the CI compiles for.
    pub const COMPUTE_70: Arch = Arch::new(7, 0);
    /// Ampere (sm_80).
    pub const COMPUTE_80: Arch = Arch::new(8, 0);
    /// Hopper (sm_90).
    pub const COMPUTE_90: Arch = Arch::new(9, 0);
    /// The architectures the compile tier checks.
    pub const CI: [Arch; 3] = [Arch::COMPUTE_70, Arch::COMPUTE_80, Arch::COMPUTE_90];

    /// Compute capability `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Arch {
        Arch { major, minor }
    }

    /// From the driver's compute capability (`None` if negative).
    pub fn from_compute_capability(major: i32, minor: i32) -> Option<Arch> {
        Some(Arch::new(
            u32::try_from(major).ok()?,
            u32::try_from(minor).ok()?,
        ))
    }

    /// `compute_XY`, the name NVRTC's `--gpu-architecture` takes.
    pub fn compute_name(self) -> String {
        format!("compute_{}{}", self.major, self.minor)
    }

    /// `sm_XY`, the real architecture of the same capability (for `ptxas --gpu-name`).
    pub fn sm_name(self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.compute_name())
    }
}

/// Why PTX could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NvrtcError {
    /// `libnvrtc` cannot be loaded (not installed, or not on the library path).
    #[error(
        "the NVRTC library cannot be loaded (tried {candidates}); install the CUDA toolkit or the \
         `nvidia-cuda-nvrtc-cu12` wheel and put its lib directory on LD_LIBRARY_PATH"
    )]
    LibraryMissing {
        /// The file names tried, comma-separated.
        candidates: String,
    },
    /// NVRTC rejected the source; `log` is its compile log.
    #[error("NVRTC cannot compile {source_name} for {arch}: {status}\n{log}")]
    Compile {
        /// Source file name.
        source_name: &'static str,
        /// Target architecture.
        arch: Arch,
        /// NVRTC's status code.
        status: String,
        /// The compile log.
        log: String,
    },
    /// An NVRTC call other than the compilation failed.
    #[error("NVRTC {op} failed for {source_name}: {status}")]
    Nvrtc {
        /// The call.
        op: &'static str,
        /// Source file name.
        source_name: &'static str,
        /// NVRTC's status code.
        status: String,
    },
    /// The PTX cache could not be read or written.
    #[error("PTX cache {}: {source}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No cache directory: neither `MICRODIFF_CACHE_DIR`, `XDG_CACHE_HOME` nor `HOME` is set.
    #[error("no PTX cache directory: set MICRODIFF_CACHE_DIR (or XDG_CACHE_HOME or HOME)")]
    NoCacheDir,
}

/// Can NVRTC be loaded? Tries cudarc's candidate names for `libnvrtc` without calling into the
/// library, so it never panics.
pub fn probe() -> Result<(), NvrtcError> {
    // SAFETY: `is_culib_present` only calls `libloading::Library::new` on each candidate name
    // and drops what it opened; no symbol of the library is called, so no signature or
    // initialisation state is relied on.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(NvrtcError::LibraryMissing {
            candidates: cudarc::get_lib_name_candidates("nvrtc").join(", "),
        })
    }
}

/// NVRTC's version `(major, minor)`.
pub fn version() -> Result<(u32, u32), NvrtcError> {
    probe()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: the library loads (probe); the two pointers are valid for writes of c_int.
    let status = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| NvrtcError::Nvrtc {
        op: "nvrtcVersion",
        source_name: "-",
        status: format!("{e:?}"),
    })?;
    Ok((major.max(0) as u32, minor.max(0) as u32))
}

/// A created NVRTC program, destroyed on drop. Holds the C strings NVRTC may point into.
struct Program {
    prog: sys::nvrtcProgram,
    _strings: Vec<CString>,
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: `prog` was created by nvrtcCreateProgram and is destroyed only here. A
        // failure to destroy leaks the program and is not worth a panic.
        let _ = unsafe { result::destroy_program(self.prog) };
    }
}

fn c_string(s: &str, what: &'static str, source_name: &'static str) -> Result<CString, NvrtcError> {
    CString::new(s).map_err(|_| NvrtcError::Nvrtc {
        op: what,
        source_name,
        status: "text contains a NUL byte".into(),
    })
}

/// The complete option list for `arch`.
pub fn options(arch: Arch) -> Vec<String> {
    let mut o: Vec<String> = OPTIONS.iter().map(|s| (*s).to_owned()).collect();
    o.push(format!("--gpu-architecture={}", arch.compute_name()));
    o
}

/// Compiles `source` for `arch` with [`OPTIONS`] and every header, without the cache.
pub fn compile(source: &Source, arch: Arch) -> Result<String, NvrtcError> {
    probe()?;
    let name = source.name;
    let nvrtc_err = |op: &'static str| {
        move |e: result::NvrtcError| NvrtcError::Nvrtc {
            op,
            source_name: name,
            status: format!("{:?}", e.0),
        }
    };
    let src = c_string(source.code, "source", name)?;
    let src_name = c_string(name, "source name", name)?;
    let mut strings = vec![];
    let mut header_ptrs: Vec<*const c_char> = vec![];
    let mut include_ptrs: Vec<*const c_char> = vec![];
    for h in HEADERS {
        let code = c_string(h.code, "header", name)?;
        let inc = c_string(h.name, "header name", name)?;
        header_ptrs.push(code.as_ptr());
        include_ptrs.push(inc.as_ptr());
        strings.push(code);
        strings.push(inc);
    }
    let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: the library loads (probe); every pointer is to a NUL-terminated string owned by
    // `src`, `src_name` or `strings`, all kept alive in `Program` until the program is
    // destroyed; the two header arrays have HEADERS.len() entries, as passed.
    let status = unsafe {
        sys::nvrtcCreateProgram(
            &mut prog,
            src.as_ptr(),
            src_name.as_ptr(),
            HEADERS.len() as c_int,
            header_ptrs.as_ptr(),
            include_ptrs.as_ptr(),
        )
    };
    status.result().map_err(nvrtc_err("nvrtcCreateProgram"))?;
    strings.push(src);
    strings.push(src_name);
    let program = Program {
        prog,
        _strings: strings,
    };
    let opts = options(arch);
    // SAFETY: `program.prog` was created above and is not destroyed until `program` drops.
    let compiled = unsafe { result::compile_program(program.prog, &opts) };
    if let Err(e) = compiled {
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(program.prog) }
            .map(|raw| c_chars_to_string(&raw))
            .unwrap_or_else(|e| format!("(no log: {e:?})"));
        return Err(NvrtcError::Compile {
            source_name: name,
            arch,
            status: format!("{:?}", e.0),
            log,
        });
    }
    // SAFETY: as above; the program compiled.
    let ptx = unsafe { result::get_ptx(program.prog) }.map_err(nvrtc_err("nvrtcGetPTX"))?;
    Ok(c_chars_to_string(&ptx))
}

/// A NUL-terminated C buffer as a String (lossy; PTX and logs are ASCII).
fn c_chars_to_string(raw: &[c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The PTX cache directory: `$MICRODIFF_CACHE_DIR/ptx`, else `$XDG_CACHE_HOME/microdiff/ptx`,
/// else `$HOME/.cache/microdiff/ptx`.
pub fn cache_dir() -> Result<PathBuf, NvrtcError> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("MICRODIFF_CACHE_DIR") {
        return Ok(d.join("ptx"));
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Ok(d.join("microdiff").join("ptx"));
    }
    var("HOME")
        .map(|h| h.join(".cache").join("microdiff").join("ptx"))
        .ok_or(NvrtcError::NoCacheDir)
}

/// The cache key of `source` for `arch` under NVRTC `version`: sha256 (hex) of the version,
/// the options, the source and every header (names and texts, length-prefixed so no two
/// inputs hash alike).
pub fn cache_key(source: &Source, arch: Arch, version: (u32, u32)) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(format!("nvrtc {}.{}", version.0, version.1).as_bytes());
    for o in options(arch) {
        field(o.as_bytes());
    }
    field(source.name.as_bytes());
    field(source.code.as_bytes());
    for hd in HEADERS {
        field(hd.name.as_bytes());
        field(hd.code.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Does `ptx` define every entry point of `source` (`.entry md_x(`)?
pub fn has_entry_points(ptx: &str, source: &Source) -> bool {
    source.entry_points.iter().all(|e| {
        ptx.lines().any(|l| {
            let l = l.trim_start();
            l.strip_prefix(".visible .entry ")
                .or_else(|| l.strip_prefix(".entry "))
                .is_some_and(|rest| rest.strip_prefix(e).is_some_and(|r| r.starts_with('(')))
        })
    })
}

/// PTX of `source` for `arch`, from the cache in [`cache_dir`] or compiled (and cached).
pub fn ptx_for(source: &Source, arch: Arch) -> Result<String, NvrtcError> {
    ptx_for_in(source, arch, &cache_dir()?)
}

/// [`ptx_for`] with the cache in `dir`.
pub fn ptx_for_in(source: &Source, arch: Arch, dir: &Path) -> Result<String, NvrtcError> {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    probe()?;
    // The library loads, so nvrtcVersion only fails if NVRTC itself is broken; then the key
    // uses 0.0 and compile() below reports the real error.
    let version = *VERSION.get_or_init(|| version().unwrap_or((0, 0)));
    let path = dir.join(format!(
        "{}-{}-{}.ptx",
        source.name.trim_end_matches(".cu"),
        cache_key(source, arch, version),
        arch.compute_name()
    ));
    if let Ok(ptx) = std::fs::read_to_string(&path)
        && has_entry_points(&ptx, source)
    {
        return Ok(ptx);
    }
    let ptx = compile(source, arch)?;
    write_atomic(&path, ptx.as_bytes())?;
    Ok(ptx)
}

/// Writes `bytes` to `path` (creating its directory) with the crate's one atomic-write helper,
/// so concurrent readers see the old file or the whole new one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NvrtcError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| NvrtcError::Cache { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    crate::files::write_atomic(path, bytes).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdiff_kernels::cuda::SOURCES;

    #[test]
    fn arch_names() {
        assert_eq!(Arch::COMPUTE_80.compute_name(), "compute_80");
        assert_eq!(Arch::COMPUTE_90.sm_name(), "sm_90");
        assert_eq!(Arch::from_compute_capability(8, 6), Some(Arch::new(8, 6)));
        assert_eq!(Arch::from_compute_capability(-1, 0), None);
        assert!(options(Arch::COMPUTE_70).contains(&"--gpu-architecture=compute_70".to_owned()));
        assert!(options(Arch::COMPUTE_70).contains(&"--fmad=false".to_owned()));
    }

    #[test]
    fn cache_key_separates_arch_source_and_version() {
        let (a, b) = (&SOURCES[0], &SOURCES[1]);
        let k = cache_key(a, Arch::COMPUTE_80, (12, 8));
        assert_eq!(k.len(), 64);
        assert_eq!(k, cache_key(a, Arch::COMPUTE_80, (12, 8)));
        assert_ne!(k, cache_key(a, Arch::COMPUTE_90, (12, 8)));
        assert_ne!(k, cache_key(b, Arch::COMPUTE_80, (12, 8)));
        assert_ne!(k, cache_key(a, Arch::COMPUTE_80, (12, 9)));
    }

    #[test]
    fn entry_point_detection() {
        let src = &SOURCES[0]; // elementwise.cu
        let ptx = ".visible .entry md_fill(\n.visible .entry md_add_assign(\n\
                   .visible .entry md_scale(\n";
        assert!(has_entry_points(ptx, src));
        assert!(!has_entry_points(
            ".visible .entry md_fill(\n.visible .entry md_scale_x(",
            src
        ));
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("microdiff-nvrtc-test-{}", std::process::id()));
        let path = dir.join("a.ptx");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Without NVRTC every entry point is a typed error, never a panic.
    #[test]
    fn missing_library_is_an_error() {
        if probe().is_ok() {
            return; // NVRTC is installed here: the compile tier covers this path.
        }
        let dir = std::env::temp_dir();
        assert!(matches!(
            ptx_for_in(&SOURCES[0], Arch::COMPUTE_80, &dir),
            Err(NvrtcError::LibraryMissing { .. })
        ));
        assert!(matches!(
            compile(&SOURCES[0], Arch::COMPUTE_80),
            Err(NvrtcError::LibraryMissing { .. })
        ));
    }
}
