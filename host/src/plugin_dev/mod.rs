//! The plugin author's loop: scaffold a plugin crate (`orch plugin new`), compile and pack it
//! into a bundle (`orch plugin build`), and install a bundle into a repository
//! (`orch plugin install`). `cargo xtask build` packs this repository's plugins with the same
//! code.

pub mod build;
pub mod install;
pub mod pack;
pub mod scaffold;
pub mod typescript;

pub use build::{BuildError, BuildOptions, build_plugin};
pub use install::{InstallError, InstalledBundle, install_bundle};
pub use pack::{PackError, pack_bundle, sha256_hex};
pub use scaffold::{ScaffoldError, ScaffoldOptions, scaffold_rust_plugin};
