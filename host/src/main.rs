//! The `orch` binary: parse the command line and hand it to the library.

/// mimalloc instead of glibc's malloc (issue 9). Interleaved A/B, 200 runs each: `sync-fleet`
/// 36.3 -> 32.4 ms wall and 35.4 -> 31.0 ms CPU, a one-step run 23.0 -> 20.0 ms; the peak RSS of
/// a 10,000-VM sync stays near 95 MiB, and an idle `orch serve` holds 31 MB instead of 24.
/// Transparent huge pages stay off (`no_thp`): with them the idle server held 38 MB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(orch::cli::main());
}
