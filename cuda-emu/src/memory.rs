//! Emulated device memory: host allocations whose addresses are the device addresses.
//!
//! Owns every allocation, bounds-checks every access against one live allocation, and poisons
//! new memory with `0xFF` bytes (a NaN in every f32), as uninitialised `cudaMalloc` memory
//! would hold garbage. `unsafe` is allowed here because the memory is handed to C++ kernels as
//! raw addresses; every access goes through [`Memory::span`], which checks bounds.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::collections::BTreeMap;
use std::ptr::NonNull;

use crate::EmuError;

/// Alignment of every allocation: `cudaMalloc`'s 256 bytes.
const ALIGN: usize = 256;

/// The byte every fresh allocation is filled with (`0xFFFFFFFF` is a NaN).
pub(crate) const POISON: u8 = 0xFF;

struct Block {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

/// Every live allocation, keyed by start address.
#[derive(Default)]
pub(crate) struct Memory {
    blocks: BTreeMap<u64, Block>,
}

// SAFETY: the blocks are plain heap memory owned by this map; nothing is tied to a thread.
unsafe impl Send for Memory {}

impl Memory {
    pub(crate) fn alloc(&mut self, bytes: usize) -> Result<u64, EmuError> {
        let layout = Layout::from_size_align(bytes.max(1), ALIGN)
            .map_err(|_| EmuError::OutOfMemory { bytes })?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw).ok_or(EmuError::OutOfMemory { bytes })?;
        // SAFETY: `ptr` is a fresh allocation of `layout.size()` bytes.
        unsafe { ptr.as_ptr().write_bytes(POISON, layout.size()) };
        let addr = ptr.as_ptr() as u64;
        self.blocks.insert(
            addr,
            Block {
                ptr,
                len: bytes,
                layout,
            },
        );
        Ok(addr)
    }

    pub(crate) fn free(&mut self, addr: u64) -> Result<(), EmuError> {
        let b = self
            .blocks
            .remove(&addr)
            .ok_or(EmuError::BadFree { addr })?;
        // SAFETY: allocated in `alloc` with exactly this layout and removed from the map, so
        // it is freed once.
        unsafe { alloc::dealloc(b.ptr.as_ptr(), b.layout) };
        Ok(())
    }

    /// Bytes from `addr` to the end of its allocation, if `addr` lies in one (its one-past-end
    /// address included, where 0 bytes are left, for empty views at the end of a buffer).
    pub(crate) fn available(&self, addr: u64) -> Option<usize> {
        let (&start, b) = self.blocks.range(..=addr).next_back()?;
        let off = usize::try_from(addr - start).ok()?;
        (off <= b.len).then(|| b.len - off)
    }

    /// A raw pointer to `len` bytes at `addr`, checked to lie in one live allocation.
    fn span(&self, addr: u64, len: usize) -> Result<*mut u8, EmuError> {
        match self.available(addr) {
            Some(avail) if avail >= len => Ok(addr as usize as *mut u8),
            _ => Err(EmuError::OutOfBounds { addr, len }),
        }
    }

    pub(crate) fn write(&mut self, dst: u64, src: &[u8]) -> Result<(), EmuError> {
        let d = self.span(dst, src.len())?;
        // SAFETY: `d..d+len` is inside a live allocation (checked by `span`) which `&mut self`
        // guards; `src` is a separate Rust slice (our memory is never lent out as a slice).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), d, src.len()) };
        Ok(())
    }

    pub(crate) fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), EmuError> {
        let s = self.span(src, dst.len())?;
        // SAFETY: as in `write`, with the roles swapped.
        unsafe { std::ptr::copy_nonoverlapping(s, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    pub(crate) fn copy(&mut self, dst: u64, src: u64, bytes: usize) -> Result<(), EmuError> {
        let s = self.span(src, bytes)?;
        let d = self.span(dst, bytes)?;
        // SAFETY: both ranges lie in live allocations (checked); `copy` allows overlap.
        unsafe { std::ptr::copy(s, d, bytes) };
        Ok(())
    }

    pub(crate) fn memset(&mut self, dst: u64, byte: u8, bytes: usize) -> Result<(), EmuError> {
        let d = self.span(dst, bytes)?;
        // SAFETY: the range lies in a live allocation (checked).
        unsafe { d.write_bytes(byte, bytes) };
        Ok(())
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        for (_, b) in std::mem::take(&mut self.blocks) {
            // SAFETY: each block was allocated with its layout and is freed once here.
            unsafe { alloc::dealloc(b.ptr.as_ptr(), b.layout) };
        }
    }
}
