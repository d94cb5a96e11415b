//! Files the tools read and write, safely:
//! * [`read_limited`] reads a user's file whole with a size limit: a path to a huge file (or to
//!   `/dev/zero`) is a clear error, not an allocation that takes the machine's memory;
//! * [`write_atomic`] replaces a file all at once (a reader sees the old bytes or the new ones,
//!   a crash leaves one of them, a failure leaves no temporary file behind);
//! * [`RunLock`] keeps two processes from writing one run directory at a time.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest weight blob the tools read: a blob's total length is a u32, and 1 GiB is far past
/// any model the runtime targets.
pub const MAX_BLOB_BYTES: u64 = 1 << 30;

/// The bytes of `path`, or an `InvalidData` error naming the limit when the file holds more
/// than `limit` bytes. Reads at most `limit + 1` bytes, whatever the file's reported length.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let too_big = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than the limit of {limit} bytes"),
        )
    };
    let reported = file.metadata()?.len();
    if reported > limit {
        return Err(too_big());
    }
    // The reported length is a hint (0 for pipes and devices): read through a bounded reader.
    let mut bytes = Vec::with_capacity(usize::try_from(reported).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically: a temporary file of a unique name beside it (process
/// id and a counter, so concurrent writers never share one), `fsync`, rename over `path`, then
/// `fsync` of the directory so the rename itself survives a crash. On any error the temporary
/// file is removed and `path` is untouched. A `path` that exists and is not a regular file (a
/// device, a FIFO) is written in place instead, and a directory is an error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // A device, FIFO or terminal (`/dev/stdout`, `/dev/full`) is written, not replaced: a
    // rename would swap the device node for a regular file (as root, in /dev).
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        if meta.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(bytes)?;
        return f.flush();
    }
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// `fsync` of the directory holding `path` (where the platform allows opening a directory).
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// An exclusive advisory lock on a run directory (`DIR/.microdiff.lock`), held while the value
/// lives. The operating system releases it when the process ends, however it ends (no stale
/// lock after a kill).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir` (created if missing), or fails at once with `WouldBlock` when
    /// another process holds it.
    pub fn acquire(dir: &Path) -> std::io::Result<RunLock> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(".microdiff.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another microdiff process is using this run directory",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The names in `dir` that look like [`write_atomic`]'s temporary files: what a check that
/// none was left behind looks for.
pub fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_more_than_the_limit_without_reading_it() {
        let dir = std::env::temp_dir().join(format!("microdiff-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small");
        std::fs::write(&small, [1u8, 2, 3]).unwrap();
        assert_eq!(read_limited(&small, 3).unwrap(), [1, 2, 3]);
        let e = read_limited(&small, 2).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("limit of 2 bytes"));
        // A sparse 8 GiB file: refused from its length, nothing allocated.
        let big = dir.join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(8 << 30)
            .unwrap();
        assert!(read_limited(&big, MAX_BLOB_BYTES).is_err());
        // A device reporting length 0 but endless: bounded by the reader.
        if Path::new("/dev/zero").exists() {
            assert!(read_limited(Path::new("/dev/zero"), 1 << 10).is_err());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("microdiff-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two!").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two!");
        // A failed write (the target is a directory) leaves the directory as it was.
        let blocked = dir.join("sub");
        std::fs::create_dir_all(&blocked).unwrap();
        assert!(write_atomic(&blocked, b"x").is_err());
        assert_eq!(temporaries(&dir), Vec::<String>::new());
        // A device is written, never replaced: /dev/full reports its error, /dev/null stays.
        if Path::new("/dev/full").exists() {
            assert!(write_atomic(Path::new("/dev/full"), b"x").is_err());
            let meta = std::fs::metadata("/dev/full").unwrap();
            assert!(!meta.is_file(), "/dev/full must stay a device");
        }
        if Path::new("/dev/null").exists() {
            write_atomic(Path::new("/dev/null"), b"x").unwrap();
            assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_run_lock_excludes_a_second_holder_until_dropped() {
        let dir = std::env::temp_dir().join(format!("microdiff-lock-{}", std::process::id()));
        let first = RunLock::acquire(&dir).unwrap();
        let second = RunLock::acquire(&dir).unwrap_err();
        assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock);
        drop(first);
        let again = RunLock::acquire(&dir).unwrap();
        assert!(again.path().ends_with(".microdiff.lock"));
        drop(again);
        std::fs::remove_dir_all(&dir).ok();
    }
}
