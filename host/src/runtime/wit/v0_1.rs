//! Host bindings for `orch:plugin@0.1.0`, generated from the frozen `wit/v0.1/`.

// The generated bindings mirror the WIT, whose doc comments are the documentation.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "model-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::orch::plugin::types::{Error as PluginError, MethodKind};

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// Every file of `wit/v0.1/` with its SHA-256. 0.1.0 is released: a change goes into a new
    /// version folder beside it, never into this one.
    const FROZEN_V0_1: &[(&str, &str)] = &[(
        "plugin.wit",
        "eb1364fffa13bd81b07475722b26e9960b974df280995806e63530529347a695",
    )];

    #[test]
    fn wit_v0_1_is_frozen_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/v0.1");
        let mut found: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.expect("directory entry").path();
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let name = path
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned();
                (name, hex::encode(Sha256::digest(&bytes)))
            })
            .collect();
        found.sort();
        let expected: Vec<(String, String)> = FROZEN_V0_1
            .iter()
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect();
        assert_eq!(
            found, expected,
            "wit/v0.1/ is frozen: put changes into a new version folder (wit/v0.2/) instead"
        );
    }
}
