//! The C++ half: `shim/launch.cpp`'s registry and launcher, linked as a static library by
//! `build.rs`. The only module besides [`crate::memory`] allowed `unsafe`, because calling C++
//! is; every call's invariants are checked by the safe wrappers here or by their callers.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};

unsafe extern "C" {
    fn md_emu_kernel_count() -> u32;
    fn md_emu_kernel_name(i: u32) -> *const c_char;
    fn md_emu_kernel_params(i: u32) -> *const c_char;
    fn md_emu_launch(
        index: u32,
        grid: *const u32,
        block: *const u32,
        slots: *const u64,
        err: *mut c_char,
        errlen: usize,
    ) -> i32;
}

/// One registry entry: `(name, signature)` as static strings of the C++ side.
pub(crate) fn registry() -> Vec<(&'static str, &'static str)> {
    // SAFETY: a pure function returning the length of a constant array.
    let n = unsafe { md_emu_kernel_count() };
    (0..n)
        .filter_map(|i| {
            // SAFETY: i < count, so both return pointers to NUL-terminated string literals of
            // the C++ registry (static storage, never freed or modified).
            let (name, params) = unsafe { (md_emu_kernel_name(i), md_emu_kernel_params(i)) };
            if name.is_null() || params.is_null() {
                return None;
            }
            // SAFETY: non-null, NUL-terminated, static (see above).
            let (name, params) = unsafe { (CStr::from_ptr(name), CStr::from_ptr(params)) };
            Some((name.to_str().ok()?, params.to_str().ok()?))
        })
        .collect()
}

/// Runs registry entry `index` on the CPU.
///
/// # Safety
///
/// The caller guarantees: `index` is a registry index; `slots` holds one value per parameter
/// of the kernel's signature, of the right kind; every pointer slot, with the element counts
/// the other slots give, addresses only memory of live allocations that nothing else touches
/// during the call; `block` has between 1 and 1024 threads and `grid` at least one block;
/// no other launch runs at the same time (the shared-memory buffer is process-wide).
pub(crate) unsafe fn launch(
    index: u32,
    grid: [u32; 3],
    block: [u32; 3],
    slots: &[u64],
) -> Result<(), String> {
    let mut err = [0 as c_char; 256];
    // SAFETY: forwarded from this function's contract; `grid`, `block`, `slots` and `err`
    // outlive the call and `err.len()` is its capacity.
    let rc = unsafe {
        md_emu_launch(
            index,
            grid.as_ptr(),
            block.as_ptr(),
            slots.as_ptr(),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the launcher always NUL-terminates the message within `err` on failure.
    let msg = unsafe { CStr::from_ptr(err.as_ptr()) };
    Err(msg.to_string_lossy().into_owned())
}
