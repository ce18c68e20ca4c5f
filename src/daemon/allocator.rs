//! How the daemon asks glibc's allocator to treat large buffers.
//!
//! glibc serves an allocation of at least `M_MMAP_THRESHOLD` bytes (128 KiB) with its own
//! `mmap`, returned to the kernel on free; but freeing such a buffer *raises* the threshold to
//! its size (up to 32 MiB). After the first metrics exposition or reply of a few MiB, every later
//! one of that size comes from a heap arena instead, and the small long-lived allocations made
//! between them (a pass's records, a shop's status line) pin the arena's pages: measured on the
//! release binary at 10 000 shops, peak RSS 310 MiB for a peak heap of 154 MB, of which 230 MiB
//! sat in four thread arenas. Fixing the threshold at its default keeps it there (it turns the
//! dynamic adjustment off): 148 MiB (BENCHMARKS.md).
//!
//! Invariant: called once, when the daemon starts; it changes how memory is laid out, never
//! what the program does. Elsewhere than glibc it does nothing.

/// glibc's default `M_MMAP_THRESHOLD`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Keeps buffers of 128 KiB and more in their own mappings for the life of the process.
pub(super) fn keep_large_buffers_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; glibc takes its own lock to do so, and
    // any value is valid for M_MMAP_THRESHOLD up to HEAP_MAX_SIZE / 2.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
