//! The `switchboard` binary: parses the command line and hands over to the
//! library.

use clap::Parser;

/// With the `dhat-heap` feature every allocation goes through dhat, which
/// writes `dhat-heap.json` when the server exits (BENCHMARKS.md, "Memory
/// under sustained ingest").
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// mimalloc otherwise: glibc's malloc and free were a third of the
/// instructions of an ingest (BENCHMARKS.md, S12), mimalloc's thread-local
/// free lists cost a fraction of that ([`switchboard::alloc`] says how it
/// is asked).
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static ALLOC: switchboard::alloc::Mimalloc = switchboard::alloc::Mimalloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "dhat-heap")]
    let profiler = dhat::Profiler::new_heap();
    let cli = switchboard::cli::Cli::parse();
    let code = switchboard::cli::run(cli);
    #[cfg(feature = "dhat-heap")]
    drop(profiler);
    code
}
