//! The `switchboard` binary: parses the command line and hands over to the
//! library.

use clap::Parser;

/// With the `dhat-heap` feature every allocation goes through dhat, which
/// writes `dhat-heap.json` when the server exits (BENCHMARKS.md, "Memory
/// under sustained ingest").
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "dhat-heap")]
    let profiler = dhat::Profiler::new_heap();
    let cli = switchboard::cli::Cli::parse();
    let code = switchboard::cli::run(cli);
    #[cfg(feature = "dhat-heap")]
    drop(profiler);
    code
}
