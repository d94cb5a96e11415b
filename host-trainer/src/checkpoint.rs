//! Training checkpoints: everything needed to continue a run bit for bit.
//!
//! ```text
//! "MDCK" | u32 version | u32 header length | header (JSON: config, step, loss history)
//!        | f32 params | f32 EMA | f32 Adam m | f32 Adam v      (little-endian, `len` each)
//!        | u32 CRC-32 of everything before it
//! ```
//! Writes are atomic (a temporary file in the same directory, flushed, then renamed over the
//! target), so a crash leaves either the old checkpoint or the new one, never half of one. A
//! truncated, corrupted or foreign file is a typed [`CheckpointError`], and so is resuming
//! with a configuration that does not match the checkpoint's.

use std::path::{Path, PathBuf};

use microdiff_runtime::blob::crc::crc32;
use serde::{Deserialize, Serialize};

/// First four bytes of a checkpoint.
pub const MAGIC: [u8; 4] = *b"MDCK";
/// Format version written and read.
pub const VERSION: u32 = 1;

/// What can go wrong reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a microdiff checkpoint at all.
    #[error("{path}: not a microdiff checkpoint (no MDCK magic)")]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
    },
    /// Written by another format version.
    #[error("{path}: checkpoint format version {found}, this build reads {VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u32,
    },
    /// Truncated or corrupted (length or CRC disagree).
    #[error("{path}: checkpoint is truncated or corrupted ({what})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What disagreed.
        what: String,
    },
    /// A valid checkpoint of a different run configuration.
    #[error("{path}: checkpoint does not match this run: {what}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Which setting differs.
        what: String,
    },
}

/// The saved state of a run. `H` is the run's header (its configuration and progress).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<H> {
    /// Configuration and progress, stored as JSON.
    pub header: H,
    /// Parameters.
    pub params: Vec<f32>,
    /// EMA of the parameters.
    pub ema: Vec<f32>,
    /// Adam first moments.
    pub m: Vec<f32>,
    /// Adam second moments.
    pub v: Vec<f32>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl<H: Serialize + for<'de> Deserialize<'de>> Checkpoint<H> {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let n = self.params.len();
        let mut out = Vec::with_capacity(16 + header.len() + 16 * n);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(n as u64).to_le_bytes());
        for buf in [&self.params, &self.ema, &self.m, &self.v] {
            for v in buf.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a checkpoint's bytes (`path` only names the file in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let corrupt = |what: &str| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            what: what.into(),
        };
        if bytes.len() < 4 || bytes[..4] != MAGIC {
            return Err(CheckpointError::NotACheckpoint {
                path: path.to_path_buf(),
            });
        }
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| corrupt("header truncated"))
        };
        let version = u32_at(4)?;
        if version != VERSION {
            return Err(CheckpointError::Version {
                path: path.to_path_buf(),
                found: version,
            });
        }
        if bytes.len() < 16 {
            return Err(corrupt("shorter than its header"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(corrupt("CRC mismatch"));
        }
        let hlen = u32_at(8)? as usize;
        let header_bytes = body
            .get(12..12 + hlen)
            .ok_or_else(|| corrupt("header truncated"))?;
        let header: H =
            serde_json::from_slice(header_bytes).map_err(|e| corrupt(&format!("header: {e}")))?;
        let at = 12 + hlen;
        let n = body
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
            .ok_or_else(|| corrupt("tensor length missing"))?;
        let data = &body[at + 8..];
        if n.checked_mul(16) != Some(data.len()) {
            return Err(corrupt("tensor data length disagrees with the header"));
        }
        let read = |k: usize| -> Vec<f32> {
            data[k * 4 * n..(k + 1) * 4 * n]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        Ok(Checkpoint {
            header,
            params: read(0),
            ema: read(1),
            m: read(2),
            v: read(3),
        })
    }

    /// Writes atomically ([`crate::files::write_atomic`]: a uniquely named temporary file,
    /// `fsync`, rename, `fsync` of the directory; no temporary file left on failure).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        crate::files::write_atomic(path, &self.to_bytes()).map_err(io(path))
    }

    /// Reads and validates a checkpoint file.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Self::from_bytes(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint<(String, u64)> {
        Checkpoint {
            header: ("run".into(), 42),
            params: vec![1.0, -2.0, 3.5],
            ema: vec![0.5, 0.25, 0.125],
            m: vec![0.0, 1e-3, -1e-3],
            v: vec![1e-6, 2e-6, 3e-6],
        }
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let c = sample();
        let bytes = c.to_bytes();
        let p = Path::new("x.ckpt");
        assert_eq!(Checkpoint::from_bytes(&bytes, p).unwrap(), c);
        // Truncation anywhere.
        for cut in [0, 3, 10, 20, bytes.len() - 1] {
            assert!(Checkpoint::<(String, u64)>::from_bytes(&bytes[..cut], p).is_err());
        }
        // A flipped bit in the data.
        let mut b = bytes.clone();
        let mid = b.len() - 10;
        b[mid] ^= 1;
        assert!(matches!(
            Checkpoint::<(String, u64)>::from_bytes(&b, p),
            Err(CheckpointError::Corrupt { .. })
        ));
        // Another format version.
        let mut b = bytes.clone();
        b[4] = 9;
        assert!(matches!(
            Checkpoint::<(String, u64)>::from_bytes(&b, p),
            Err(CheckpointError::Version { found: 9, .. })
        ));
        // Not a checkpoint.
        assert!(matches!(
            Checkpoint::<(String, u64)>::from_bytes(b"PNG...", p),
            Err(CheckpointError::NotACheckpoint { .. })
        ));
    }

    #[test]
    fn saves_atomically() {
        let dir = std::env::temp_dir().join(format!("microdiff-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.ckpt");
        sample().save(&path).unwrap();
        assert_eq!(crate::files::temporaries(&dir), Vec::<String>::new());
        assert_eq!(Checkpoint::<(String, u64)>::load(&path).unwrap(), sample());
        let err = Checkpoint::<(String, u64)>::load(&dir.join("missing.ckpt")).unwrap_err();
        assert!(err.to_string().contains("missing.ckpt"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
