//! The process's allocator: jemalloc, with two arenas and freed pages returned at once.
//!
//! Why not glibc's malloc: measured on the release binary at 10 000 shops (BENCHMARKS.md), a
//! shop's idle pass makes ~1 000 small allocations (HTTP, JSON, sled's nodes), and glibc's malloc
//! and free were ~21 % of the daemon's CPU; with jemalloc the daemon's CPU per idle shop-pass is
//! ~35 % lower. glibc also raises its mmap threshold after freeing a large buffer (a metrics
//! exposition, a reply of a few MiB), after which such buffers pinned arena pages: peak RSS was
//! twice the peak heap.
//!
//! The options: two arenas (the runtime has two worker threads on a 2-core machine; jemalloc's
//! default of four per core kept more pages around); freed pages purged at once (`dirty_decay_ms`
//! 0) and none kept "muzzy" (lazily freed), so RSS follows the live heap. Measured at 10 000 shops
//! (BENCHMARKS.md): with pages kept 1 s, a first pass's churn (pages of JSON, HTTP buffers) left
//! ~20 MiB of freed pages resident at its peak, 134–145 MiB against 122–128 MiB purged at once,
//! for no measurable CPU (and since jemalloc purges only when it is called, pages freed just
//! before a quiet spell stayed resident until the next pass).
//!
//! Invariant: only how memory is laid out depends on this, never what the program does.

use std::ffi::c_char;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start from this symbol (the crate builds jemalloc with
/// the `_rjem_` prefix).
#[unsafe(export_name = "_rjem_malloc_conf")]
static OPTIONS: Options = Options(c"narenas:2,dirty_decay_ms:0,muzzy_decay_ms:0".as_ptr());

/// A C string pointer, which jemalloc only reads.
#[repr(transparent)]
struct Options(*const c_char);

// SAFETY: the pointer is to a `'static` C string literal, never written.
unsafe impl Sync for Options {}
