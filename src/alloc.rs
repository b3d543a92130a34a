//! The process allocator: mimalloc, asked the way C's `malloc` is whenever
//! its own alignment is enough.
//!
//! The `mimalloc` crate's allocator sends every request to
//! `mi_malloc_aligned`. In mimalloc 3 that path costs about twice the
//! instructions of `mi_malloc` per allocation (the allocator was 15 % of an
//! ingest's instructions, S12 in BENCHMARKS.md), and it gives some sizes
//! a block of the next power of two (48 bytes take 64). Rust asks for an
//! alignment above 16 almost never, and `mi_malloc` already promises what
//! C's `malloc` promises: blocks of 16 bytes or more are 16-aligned
//! (`MI_MAX_ALIGN_SIZE`; bins above 16 bytes are multiples of 16 and a
//! page's first block is 16-aligned), smaller blocks are 8-aligned. So the
//! rule is the one std's `System` allocator applies to `malloc`: the plain
//! call when `align <= 16 && align <= size`, the aligned call otherwise.

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as mi;

/// The alignment `mi_malloc` gives every block of at least this many bytes
/// (`alignof(max_align_t)`, mimalloc's `MI_MAX_ALIGN_SIZE`).
const MALLOC_ALIGN: usize = 16;

/// mimalloc as the global allocator: the server binary's
/// `#[global_allocator]`, and the instruction-count example's.
pub struct Mimalloc;

/// Whether a block of `size` bytes from the plain calls is aligned enough.
fn plain(align: usize, size: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free`
// takes blocks of the plain and the aligned calls alike); a block has the
// layout's alignment, by `plain` for the plain calls and by request for the
// aligned ones; a null return reports an allocation failure, as
// `GlobalAlloc` requires.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: any size and power-of-two alignment is a valid request.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is a live block of this allocator; the new block
        // keeps the alignment by the same rule as `alloc`.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Turns transparent huge pages off for the whole process
/// (`prctl(PR_SET_THP_DISABLE)`), unless the operator set
/// `MIMALLOC_ALLOW_THP`: then mimalloc's own reading of it decides (`1`
/// keeps them, `0` has mimalloc turn them off itself).
///
/// mimalloc asks the kernel for huge pages (`madvise(MADV_HUGEPAGE)`), so
/// every first touch of a fresh 2 MiB region zeroes all of it at once. On a
/// virtual machine that first touch is slow: in a profile of S1 (a store
/// that grows by every call, as a server's does while its log and call
/// state fill up) it was 27 % of the server's CPU, and with huge pages off
/// the same build spent about 37 µs per Ingest instead of 46–48
/// (BENCHMARKS.md, "tenth sitting"). Redis and most databases advise the
/// same. Returns whether this call turned them off (`false`: the variable
/// is set, or not Linux).
pub fn turn_off_huge_pages() -> std::io::Result<bool> {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return Ok(false);
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and
        // changes nothing but the process's huge-page flag.
        let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to a few pages' blocks with every alignment up to 64,
    /// through alloc, a growing and a shrinking realloc and a zeroed alloc:
    /// each block is aligned, keeps its bytes, and zeroed blocks are zero.
    /// Blocks are held while the next ones are taken, so they come from
    /// the middle of pages, not only from their starts.
    #[test]
    fn every_block_has_its_layouts_alignment_and_keeps_its_bytes() {
        let a = Mimalloc;
        let aligned = |p: *mut u8, align: usize| !p.is_null() && (p as usize).is_multiple_of(align);
        let mut held = Vec::new();
        for size in (1..=1100).chain([4095, 4096, 70_000, 1 << 20]) {
            for align in [1, 2, 4, 8, 16, 32, 64] {
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                // SAFETY: a non-zero size; each block is freed once, with its
                // current layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(aligned(p, align), "alloc({size}, {align}) gave {p:?}");
                    std::ptr::write_bytes(p, 0xa5, size);
                    let grown = a.realloc(p, layout, size * 2 + 24);
                    assert!(aligned(grown, align), "realloc({size} -> {}, {align})", size * 2 + 24);
                    assert!((0..size).all(|i| *grown.add(i) == 0xa5), "realloc({size}, {align}) lost bytes");
                    let grown_layout = Layout::from_size_align(size * 2 + 24, align).expect("valid layout");
                    let small = (size / 3).max(1);
                    let shrunk = a.realloc(grown, grown_layout, small);
                    assert!(aligned(shrunk, align), "realloc(-> {small}, {align})");
                    assert!((0..small).all(|i| *shrunk.add(i) == 0xa5), "shrinking realloc lost bytes");
                    let z = a.alloc_zeroed(layout);
                    assert!(aligned(z, align), "alloc_zeroed({size}, {align})");
                    assert!((0..size).all(|i| *z.add(i) == 0), "alloc_zeroed({size}, {align}) is not zero");
                    held.push((shrunk, Layout::from_size_align(small, align).expect("valid layout")));
                    held.push((z, layout));
                }
            }
            if held.len() > 4096 {
                for (p, layout) in held.drain(..) {
                    // SAFETY: blocks of this allocator, freed once.
                    unsafe { a.dealloc(p, layout) }
                }
            }
        }
        for (p, layout) in held {
            // SAFETY: as above.
            unsafe { a.dealloc(p, layout) }
        }
    }

    /// The process's huge-page flag is what `turn_off_huge_pages` reports,
    /// as the kernel reads it back.
    #[cfg(target_os = "linux")]
    #[test]
    fn turning_huge_pages_off_sets_the_process_flag() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            // The operator's variable decides: the call leaves the flag alone.
            assert!(!turn_off_huge_pages().expect("no prctl"));
            return;
        }
        assert!(turn_off_huge_pages().expect("prctl"));
        // SAFETY: integer arguments only; reads the flag.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1, "PR_GET_THP_DISABLE");
    }
}
