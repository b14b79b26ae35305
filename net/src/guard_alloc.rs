//! A global allocator that keeps a lying length prefix from aborting the process.
//!
//! The generated Kafka codec sizes a `Vec` from the element count a peer declares before it has
//! read a single element. A 17-byte frame can declare two billion array entries; the system
//! allocator refuses the resulting terabyte request and Rust aborts the whole broker on a failed
//! allocation. The request was never going to be filled — the frame holds a few bytes and decoding
//! fails at the first missing element — so the allocation only has to *succeed* cheaply.
//!
//! [`GuardedAlloc`] passes every request below [`HUGE_BYTES`] to the system allocator unchanged.
//! Larger requests get an anonymous private mapping with `MAP_NORESERVE`: address space only, no
//! commit charge and no physical page until a byte is written, returned to the kernel with
//! `munmap` when the `Vec` is dropped. Legitimate buffers never get this large (frames are capped
//! by `socket.request.max.bytes`, segments are written in bounded chunks), so the hot path never
//! sees a mapping.
//!
//! Where the kernel is set to strict overcommit (`vm.overcommit_memory=2`) `MAP_NORESERVE` is
//! ignored and a huge request fails as before; the broker logs that setting at start.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Requests at or above this size are served by `MAP_NORESERVE` mappings.
pub const HUGE_BYTES: usize = 1 << 30;

/// Page size assumed for mapping alignment: mmap returns page-aligned memory, so any alignment up
/// to this holds; larger alignments go to the system allocator.
const PAGE_BYTES: usize = 4096;

/// The broker's global allocator (see the module docs).
pub struct GuardedAlloc;

/// Whether [`GuardedAlloc`] serves `layout` from a mapping.
pub(crate) fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE_BYTES && layout.align() <= PAGE_BYTES
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping touches no existing memory; failure is MAP_FAILED.
    let p = unsafe {
        libc_mmap(
            ptr::null_mut(),
            size,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

unsafe fn unmap(p: *mut u8, size: usize) {
    // SAFETY: `p`/`size` are exactly what `map` returned and was asked for.
    let rc = unsafe { libc_munmap(p.cast(), size) };
    debug_assert_eq!(rc, 0, "munmap of a guarded mapping failed");
}

// SAFETY: every path either forwards to `System` with the same layout or pairs `map`/`unmap` on
// the same size; the choice depends only on the layout, which the caller repeats on dealloc.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // SAFETY: see `map`.
            return unsafe { map(layout.size()) };
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Fresh anonymous pages are zero.
            // SAFETY: see `map`.
            return unsafe { map(layout.size()) };
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: a huge layout was served by `map` with this size.
            unsafe { unmap(p, layout.size()) };
            return;
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: forwarded unchanged.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // SAFETY: `alloc`/`dealloc` above pick the same backing store for the same layout.
        unsafe {
            let fresh = self.alloc(new_layout);
            if !fresh.is_null() {
                ptr::copy_nonoverlapping(p, fresh, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            fresh
        }
    }
}

// The few libc items needed, declared here so the crate does not pull in another libc binding.
const PROT_READ: i32 = 0x1;
const PROT_WRITE: i32 = 0x2;
const MAP_PRIVATE: i32 = 0x02;
const MAP_ANONYMOUS: i32 = 0x20;
const MAP_NORESERVE: i32 = 0x4000;
const MAP_FAILED: *mut std::ffi::c_void = !0usize as *mut std::ffi::c_void;

extern "C" {
    #[link_name = "mmap"]
    fn libc_mmap(
        addr: *mut std::ffi::c_void,
        len: usize,
        prot: i32,
        flags: i32,
        fd: i32,
        offset: i64,
    ) -> *mut std::ffi::c_void;
    #[link_name = "munmap"]
    fn libc_munmap(addr: *mut std::ffi::c_void, len: usize) -> i32;
}

/// The unit tests' allocator: [`GuardedAlloc`], counting on each thread what it serves from
/// mappings, so that a test can see where a lying length's reservation went and that it was
/// given back.
#[cfg(test)]
pub(crate) mod counting {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::Cell;

    use super::{is_huge, GuardedAlloc};

    thread_local! {
        // `const` and without a destructor: reading them never allocates.
        static COUNTS: Cell<Counts> = const { Cell::new(Counts::ZERO) };
    }

    /// What this thread's allocations were served from, so far.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Counts {
        /// Mappings served (requests of at least `HUGE_BYTES`).
        pub mappings: usize,
        /// Bytes of those mappings not given back yet.
        pub mapped_bytes_live: isize,
        /// Bytes the system allocator served (every request below `HUGE_BYTES`).
        pub plain_bytes: usize,
    }

    impl Counts {
        const ZERO: Counts = Counts {
            mappings: 0,
            mapped_bytes_live: 0,
            plain_bytes: 0,
        };
    }

    /// This thread's counts.
    pub(crate) fn counts() -> Counts {
        COUNTS.get()
    }

    fn served(layout: &Layout) {
        let mut c = COUNTS.get();
        if is_huge(layout) {
            c.mappings += 1;
            c.mapped_bytes_live += layout.size() as isize;
        } else {
            c.plain_bytes += layout.size();
        }
        COUNTS.set(c);
    }

    fn returned(layout: &Layout) {
        if is_huge(layout) {
            let mut c = COUNTS.get();
            c.mapped_bytes_live -= layout.size() as isize;
            COUNTS.set(c);
        }
    }

    pub(crate) struct CountingAlloc;

    // SAFETY: every call is forwarded unchanged to `GuardedAlloc`; the counters only read the
    // layouts.
    unsafe impl GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded unchanged.
            let p = unsafe { GuardedAlloc.alloc(layout) };
            if !p.is_null() {
                served(&layout);
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded unchanged.
            let p = unsafe { GuardedAlloc.alloc_zeroed(layout) };
            if !p.is_null() {
                served(&layout);
            }
            p
        }

        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            returned(&layout);
            // SAFETY: forwarded unchanged.
            unsafe { GuardedAlloc.dealloc(p, layout) }
        }

        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded unchanged.
            let fresh = unsafe { GuardedAlloc.realloc(p, layout, new_size) };
            if !fresh.is_null() {
                returned(&layout);
                // SAFETY: the caller guarantees `new_size` with this alignment is a valid layout.
                served(&unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
            }
            fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_unused_request_succeeds_and_is_returned() {
        let layout = Layout::from_size_align(1 << 40, 8).expect("layout");
        // SAFETY: paired alloc/dealloc with the same layout.
        unsafe {
            let p = GuardedAlloc.alloc(layout);
            assert!(!p.is_null(), "a 1 TiB NORESERVE mapping should be granted");
            *p = 7;
            assert_eq!(*p, 7);
            GuardedAlloc.dealloc(p, layout);
        }
    }

    #[test]
    fn realloc_across_the_threshold_keeps_the_bytes() {
        let small = Layout::from_size_align(16, 8).expect("layout");
        // SAFETY: each pointer is used with the layout it was allocated with.
        unsafe {
            let p = GuardedAlloc.alloc(small);
            for i in 0..16 {
                *p.add(i) = i as u8;
            }
            let big = GuardedAlloc.realloc(p, small, HUGE_BYTES);
            assert!(!big.is_null());
            for i in 0..16 {
                assert_eq!(*big.add(i), i as u8);
            }
            let huge = Layout::from_size_align(HUGE_BYTES, 8).expect("layout");
            let back = GuardedAlloc.realloc(big, huge, 32);
            for i in 0..16 {
                assert_eq!(*back.add(i), i as u8);
            }
            GuardedAlloc.dealloc(back, Layout::from_size_align(32, 8).expect("layout"));
        }
    }
}
