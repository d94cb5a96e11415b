//! Viewing the caller's byte arena as f32 slots, and f32 slots as the integer path's int8
//! values and i16 scratch — the runtime's only `unsafe` code.
//!
//! The arena API takes `&mut [u8]` so firmware can hand over any static buffer; the kernels
//! work on `f32`, `i8` and `i16`. Reinterpreting needs `slice::align_to_mut` or
//! `slice::from_raw_parts`, which are `unsafe`; they are isolated here so the rest of the
//! crate keeps `#![deny(unsafe_code)]`. Every view is of plain-old-data types for which every
//! bit pattern is valid, so no view can produce an invalid value.
#![allow(unsafe_code)]

/// The largest 4-byte-aligned run of f32 slots inside `bytes`, and how many bytes were
/// skipped at the front to reach alignment (0..=3).
pub(crate) fn as_f32_slots(bytes: &mut [u8]) -> (&mut [f32], usize) {
    // Any 4 bytes are a valid `f32`, so reinterpreting initialised bytes is sound.
    // SAFETY: `align_to_mut` returns an `f32`-aligned middle inside `bytes` (exclusive borrow).
    let (head, slots, _tail) = unsafe { bytes.align_to_mut::<f32>() };
    (slots, head.len())
}

/// The bytes of f32 slots as int8 codes (the integer path's values live in the f32 arena,
/// four per slot).
pub(crate) fn i8s(slots: &[f32]) -> &[i8] {
    // SAFETY: every bit pattern is a valid i8; the view covers exactly the slots' 4·len
    // initialised bytes, i8 needs no alignment, and the shared borrow is inherited.
    unsafe { core::slice::from_raw_parts(slots.as_ptr().cast::<i8>(), slots.len() * 4) }
}

/// [`i8s`], mutable.
pub(crate) fn i8s_mut(slots: &mut [f32]) -> &mut [i8] {
    // SAFETY: as `i8s`; writing any i8 leaves each slot some valid f32 bit pattern, and the
    // exclusive borrow is inherited.
    unsafe { core::slice::from_raw_parts_mut(slots.as_mut_ptr().cast::<i8>(), slots.len() * 4) }
}

/// f32 slots as i16 pairs (the scratch of `QLINEAR`'s widened input).
pub(crate) fn i16s(slots: &[f32]) -> &[i16] {
    // SAFETY: every bit pattern is a valid i16; f32's 4-byte alignment satisfies i16's 2; the
    // view covers exactly the slots' bytes; the shared borrow is inherited.
    unsafe { core::slice::from_raw_parts(slots.as_ptr().cast::<i16>(), slots.len() * 2) }
}

/// [`i16s`], mutable.
pub(crate) fn i16s_mut(slots: &mut [f32]) -> &mut [i16] {
    // SAFETY: as `i16s`; any i16 written leaves valid f32 bit patterns; exclusive borrow.
    unsafe { core::slice::from_raw_parts_mut(slots.as_mut_ptr().cast::<i16>(), slots.len() * 2) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_to_alignment() {
        let mut buf = [0u32; 5];
        let bytes: &mut [u8] = {
            // Exactly 20 bytes starting at an aligned address, via a safe byte view.
            let b: &mut [u32] = &mut buf;
            let len = b.len() * 4;
            let ptr = b.as_mut_ptr().cast::<u8>();
            // SAFETY: the u32 buffer is 20 initialised bytes borrowed exclusively here.
            unsafe { core::slice::from_raw_parts_mut(ptr, len) }
        };
        let (slots, skipped) = as_f32_slots(&mut bytes[1..]);
        assert_eq!(skipped, 3);
        assert_eq!(slots.len(), 4);
        slots[0] = 1.5;
        assert_eq!(slots[0], 1.5);
    }

    #[test]
    fn integer_views_cover_the_slots_bytes() {
        let mut slots = [0.0f32; 3];
        i8s_mut(&mut slots)[4..8].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(slots[1].to_bits().to_le_bytes(), [1, 2, 3, 4]);
        assert_eq!(i8s(&slots).len(), 12);
        i16s_mut(&mut slots)[5] = -2;
        assert_eq!(i16s(&slots)[5], -2);
        assert_eq!(i16s(&slots).len(), 6);
    }
}
