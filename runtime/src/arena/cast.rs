//! Viewing the caller's byte arena as f32 slots — the runtime's only `unsafe` code.
//!
//! The arena API takes `&mut [u8]` so firmware can hand over any static buffer; the kernels
//! work on `f32`. Reinterpreting needs `slice::align_to_mut`, which is `unsafe`; it is
//! isolated here so the rest of the crate keeps `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

/// The largest 4-byte-aligned run of f32 slots inside `bytes`, and how many bytes were
/// skipped at the front to reach alignment (0..=3).
pub(crate) fn as_f32_slots(bytes: &mut [u8]) -> (&mut [f32], usize) {
    // Any 4 bytes are a valid `f32`, so reinterpreting initialised bytes is sound.
    // SAFETY: `align_to_mut` returns an `f32`-aligned middle inside `bytes` (exclusive borrow).
    let (head, slots, _tail) = unsafe { bytes.align_to_mut::<f32>() };
    (slots, head.len())
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
}
