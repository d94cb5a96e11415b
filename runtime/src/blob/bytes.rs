//! Checked little-endian reads, usable in `const fn`.
//!
//! Every read of untrusted bytes in the blob parser goes through these: they return `None`
//! instead of indexing out of bounds, so no parser path can panic.

/// `b[at]`, or `None` past the end.
pub(crate) const fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    if at < b.len() { Some(b[at]) } else { None }
}

/// Little-endian `u16` at `at`. (One bounds check, inlined: the executor reads op records
/// and tensor records on every network evaluation.)
#[inline]
pub(crate) const fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    match b.split_at_checked(at) {
        Some((_, tail)) => match tail.first_chunk::<2>() {
            Some(c) => Some(u16::from_le_bytes(*c)),
            None => None,
        },
        None => None,
    }
}

/// Little-endian `u32` at `at` (one bounds check, inlined).
#[inline]
pub(crate) const fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    match b.split_at_checked(at) {
        Some((_, tail)) => match tail.first_chunk::<4>() {
            Some(c) => Some(u32::from_le_bytes(*c)),
            None => None,
        },
        None => None,
    }
}

/// Little-endian `f32` at `at` (bit pattern preserved).
pub(crate) const fn f32_at(b: &[u8], at: usize) -> Option<f32> {
    match u32_at(b, at) {
        Some(bits) => Some(f32::from_bits(bits)),
        None => None,
    }
}

/// `b[start..start + len]`, or `None` if it does not fit.
pub(crate) const fn sub(b: &[u8], start: usize, len: usize) -> Option<&[u8]> {
    let Some(end) = start.checked_add(len) else {
        return None;
    };
    if end > b.len() {
        return None;
    }
    let Some((_, tail)) = b.split_at_checked(start) else {
        return None;
    };
    match tail.split_at_checked(len) {
        Some((mid, _)) => Some(mid),
        None => None,
    }
}

/// `v`'s value, or `default`: `Option::unwrap_or` in a `const fn` (it is not `const` for a
/// generic `T`).
pub(crate) const fn or<T: Copy>(v: Option<T>, default: T) -> T {
    match v {
        Some(x) => x,
        None => default,
    }
}
