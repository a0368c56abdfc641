//! Which `orch:plugin` contract a component speaks, read from the component itself: the
//! `@0.x.y` of its `orch:plugin/…` import and export names, never from a hand-typed field.
//! `plugin.toml`'s `api` must agree with it.

use super::RuntimeError;
use super::manifest::SUPPORTED_API_VERSIONS;
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The package every plugin interface belongs to.
const PACKAGE: &str = "orch:plugin/";

/// The contract versions named by `orch:plugin/…@version` interfaces among `names`, sorted and
/// without repeats.
fn versions_named<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut versions: Vec<String> = names
        .into_iter()
        .filter_map(|name| name.strip_prefix(PACKAGE))
        .map(|rest| rest.split_once('@').map_or("", |(_, v)| v).to_string())
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// The one contract version among a component's import and export names, or what is wrong.
pub fn detect<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<String, String> {
    match versions_named(names).as_slice() {
        [] => Err(format!(
            "it neither imports nor exports any {PACKAGE}… interface, so it is not an orch plugin \
             (build it with the orch plugin SDK)"
        )),
        [v] if v.is_empty() => Err(format!(
            "its {PACKAGE}… interfaces carry no @version (build it with the orch plugin SDK)"
        )),
        [v] => Ok(v.clone()),
        many => Err(format!(
            "it mixes orch:plugin versions {} (build it against one SDK version)",
            many.join(", ")
        )),
    }
}

/// Checks the version a component speaks against the host's and the manifest's: an unknown
/// version and a manifest that disagrees with the wasm are refused, naming both files.
pub fn check_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    declared: &str,
    supported: &[&str],
    manifest_path: &Path,
    wasm_path: &Path,
) -> Result<String, RuntimeError> {
    let refuse = |message: String| RuntimeError::Bundle {
        path: wasm_path.to_path_buf(),
        message,
    };
    let version = detect(names).map_err(refuse)?;
    if !supported.contains(&version.as_str()) {
        return Err(refuse(format!(
            "it speaks orch:plugin@{version}, which this orch cannot load (it loads {}); \
             rebuild the plugin against a supported SDK or upgrade orch",
            supported.join(", ")
        )));
    }
    if version != declared {
        return Err(refuse(format!(
            "it speaks orch:plugin@{version} (read from its imports and exports) but {} says \
             api = \"{declared}\"; set api = \"{version}\" there or rebuild the bundle",
            manifest_path.display()
        )));
    }
    Ok(version)
}

/// [`check_names`] over a compiled component's import and export names.
pub fn check(
    engine: &Engine,
    component: &Component,
    declared: &str,
    manifest_path: &Path,
    wasm_path: &Path,
) -> Result<String, RuntimeError> {
    let ty = component.component_type();
    let names: Vec<&str> = ty
        .imports(engine)
        .map(|(name, _)| name)
        .chain(ty.exports(engine).map(|(name, _)| name))
        .collect();
    check_names(
        names,
        declared,
        SUPPORTED_API_VERSIONS,
        manifest_path,
        wasm_path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0_1: &[&str] = &[
        "wasi:io/streams@0.2.6",
        "orch:plugin/types@0.1.0",
        "orch:plugin/data@0.1.0",
        "orch:plugin/model@0.1.0",
    ];

    fn check(names: &[&str], declared: &str) -> Result<String, String> {
        check_names(
            names.iter().copied(),
            declared,
            &["0.1.0", "0.2.0"],
            Path::new("plugins/p/plugin.toml"),
            Path::new("plugins/p/plugin.wasm"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_version_is_read_from_the_interface_names() {
        assert_eq!(detect(V0_1.iter().copied()).unwrap(), "0.1.0");
        let v0_2 = ["orch:plugin/types@0.2.0", "orch:plugin/model@0.2.0"];
        assert_eq!(detect(v0_2).unwrap(), "0.2.0");
    }

    #[test]
    fn no_orch_interface_unversioned_or_mixed_versions_are_refused() {
        assert!(
            detect(["wasi:io/streams@0.2.6"])
                .unwrap_err()
                .contains("not an orch plugin")
        );
        assert!(
            detect(["orch:plugin/types"])
                .unwrap_err()
                .contains("no @version")
        );
        let mixed = detect(["orch:plugin/types@0.1.0", "orch:plugin/model@0.2.0"]).unwrap_err();
        assert!(mixed.contains("0.1.0, 0.2.0"), "{mixed}");
    }

    #[test]
    fn a_manifest_that_disagrees_with_its_wasm_is_refused_naming_both() {
        let err = check(&["orch:plugin/model@0.2.0"], "0.1.0").unwrap_err();
        for part in [
            "plugins/p/plugin.wasm",
            "plugins/p/plugin.toml",
            "orch:plugin@0.2.0",
            "api = \"0.1.0\"",
        ] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
        assert_eq!(check(V0_1, "0.1.0").unwrap(), "0.1.0");
    }

    #[test]
    fn an_unknown_version_is_a_clear_error() {
        let err = check(&["orch:plugin/model@9.0.0"], "9.0.0").unwrap_err();
        assert!(
            err.contains("plugins/p/plugin.wasm")
                && err.contains("orch:plugin@9.0.0")
                && err.contains("0.1.0, 0.2.0"),
            "{err}"
        );
    }
}
