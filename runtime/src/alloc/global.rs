//! The `GlobalAlloc` implementation: mimalloc underneath, a 16-byte header in front.
//!
//! Every block carries a [`HEADER`]-byte header whose first byte is the [`ActorClass`]
//! that was current on the allocating thread; the free, wherever and under whatever class
//! it happens, reads the class back from there, so attribution is exact even when a
//! message's buffer is freed by a pool worker. The header sits immediately before the
//! pointer handed out: for alignments up to 16 the block is `size + 16` bytes at
//! alignment 16 and the caller gets `base + 16`; for larger alignments it is
//! `size + align` bytes at `align` and the caller gets `base + align`. Either way the
//! distance from base to pointer is `max(16, align)`, which also is the outer alignment.
//!
//! Counted bytes are the sizes the program asked for (`Layout::size`); the header and
//! mimalloc's own rounding are not included.
//!
//! [`ActorClass`]: crate::class::ActorClass

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;

use mimalloc::MiMalloc;

use super::counters::{record_alloc, record_free, record_resize};
use super::current_raw;

/// Bytes of header in front of every block.
pub const HEADER: usize = 16;

/// Marker written into headers in debug builds, checked on free and realloc.
#[cfg(debug_assertions)]
const MAGIC: u32 = 0x1A9C_0DE5;

/// The counting global allocator. Install it in a binary with
///
/// ```ignore
/// #[global_allocator]
/// static GLOBAL: impulse_runtime::alloc::CountingAlloc = impulse_runtime::alloc::CountingAlloc;
/// ```
///
/// Only one allocator may be installed per binary; [`snapshot`](super::snapshot) reports
/// `installed: false` (and zeros) where it is not.
pub struct CountingAlloc;

/// Distance from the mimalloc block to the user pointer; also the outer alignment.
#[inline(always)]
const fn offset(align: usize) -> usize {
    if align <= HEADER {
        HEADER
    } else {
        align
    }
}

/// The layout requested from mimalloc for a user `layout`, if it is representable.
#[inline(always)]
fn outer(layout: Layout) -> Option<Layout> {
    let off = offset(layout.align());
    let size = layout.size().checked_add(off)?;
    Layout::from_size_align(size, off).ok()
}

/// Write the header for a fresh block and return the user pointer.
///
/// # Safety
/// `base` points to a live mimalloc block of at least `off` bytes, aligned to `off`.
#[inline(always)]
unsafe fn finish(base: *mut u8, off: usize, class: u8) -> *mut u8 {
    let user = base.add(off);
    let header = user.sub(HEADER);
    header.write(class);
    #[cfg(debug_assertions)]
    header.add(4).cast::<u32>().write(MAGIC);
    user
}

/// The class stored in the header of a block handed out by [`CountingAlloc`].
///
/// # Safety
/// `user` was returned by [`CountingAlloc`] and is still live.
#[inline(always)]
unsafe fn class_of(user: *mut u8) -> u8 {
    let header = user.sub(HEADER);
    #[cfg(debug_assertions)]
    if header.add(4).cast::<u32>().read() != MAGIC {
        // Not ours, or the header was overwritten: nothing sane can follow.
        std::process::abort();
    }
    header.read()
}

unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return ptr::null_mut();
        };
        let base = MiMalloc.alloc(outer);
        if base.is_null() {
            return base;
        }
        let class = current_raw();
        record_alloc(class, layout.size());
        finish(base, outer.align(), class)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return ptr::null_mut();
        };
        let base = MiMalloc.alloc_zeroed(outer);
        if base.is_null() {
            return base;
        }
        let class = current_raw();
        record_alloc(class, layout.size());
        finish(base, outer.align(), class)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let off = offset(layout.align());
        let class = class_of(ptr);
        record_free(class, layout.size());
        // The same layout was valid when the block was allocated.
        let outer = Layout::from_size_align_unchecked(layout.size() + off, off);
        MiMalloc.dealloc(ptr.sub(off), outer);
    }

    /// Resize in place or move, keeping the class the block was allocated under.
    ///
    /// mimalloc's aligned realloc of the base pointer keeps the base aligned to the outer
    /// alignment and copies the header with the data, so both the small- and the
    /// large-alignment layout survive unchanged at the same offset.
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let off = offset(layout.align());
        let Some(new_total) = new_size.checked_add(off) else {
            return ptr::null_mut();
        };
        if Layout::from_size_align(new_total, off).is_err() {
            return ptr::null_mut();
        }
        let class = class_of(ptr);
        let old_outer = Layout::from_size_align_unchecked(layout.size() + off, off);
        let base = MiMalloc.realloc(ptr.sub(off), old_outer, new_total);
        if base.is_null() {
            return base;
        }
        record_resize(class, new_size as i64 - layout.size() as i64);
        base.add(off)
    }
}
