//! Reading a user's file whole, with a size limit: a path to a huge file (or to `/dev/zero`)
//! is a clear error, not an allocation that takes the machine's memory.

use std::io::Read;
use std::path::Path;

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
}
