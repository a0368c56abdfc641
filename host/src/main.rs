//! The `orch` binary: parse the command line and hand it to the library.

fn main() {
    std::process::exit(orch::cli::main());
}
