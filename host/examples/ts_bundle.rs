//! Builds a TypeScript plugin into a bundle: `cargo run -p orch --example ts_bundle -- PLUGIN_DIR OUT_DIR`.
//! `cargo xtask build` uses it for the TypeScript example plugins.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, out] = args.as_slice() else {
        eprintln!("usage: ts_bundle PLUGIN_DIR OUT_DIR");
        std::process::exit(2);
    };
    let started = std::time::Instant::now();
    if let Err(e) = orch::plugin_dev::typescript::pack_bundle(plugin.as_ref(), out.as_ref()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    eprintln!(
        "ts_bundle: {out} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}
