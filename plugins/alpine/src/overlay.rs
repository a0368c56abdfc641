//! `alpine/overlay`: the diskless gold image's overlay (`lbu package`), published on the PXE
//! server. The overlay is read from the gold image, uploaded to a temporary name beside the
//! served file, checked by sha256 there and only then renamed over it, so an interrupted or
//! corrupted copy never replaces the served file. Boot files (kernel, initramfs) listed in
//! `bootFiles` are published to `tftpDir` the same way.

use crate::remote::{self, Connector, Remote, SshSettings};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

fn default_overlay_path() -> String {
    "/tmp/alpine.apkovl.tar.gz".to_string()
}

fn default_http_dir() -> String {
    "/srv/http/alpine".to_string()
}

fn default_overlay_name() -> String {
    "alpine.apkovl.tar.gz".to_string()
}

fn default_tftp_dir() -> String {
    "/tftp".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `alpine/overlay`: `ssh*` reach the gold image, `server*` the PXE server.
    pub struct OverlayGlobals {
        /// The PXE (HTTP + TFTP) server's address; it is logged into as sshUser with the same key.
        #[serde(default)]
        pub server_host: Option<String>,
        /// The PXE server's SSH port (default 22; write it anyway, the grant needs it).
        #[serde(default = "orch_plugin_sdk::remote::default_ssh_port")]
        #[schemars(range(min = 1))]
        pub server_port: u16,
        /// Where `lbu package` writes the overlay on the gold image (default `/tmp/alpine.apkovl.tar.gz`).
        #[serde(default = "default_overlay_path")]
        pub overlay_path: String,
        /// The HTTP server's directory (default `/srv/http/alpine`).
        #[serde(default = "default_http_dir")]
        pub http_dir: String,
        /// The served file's name in httpDir (default `alpine.apkovl.tar.gz`).
        #[serde(default = "default_overlay_name")]
        pub overlay_name: String,
        /// The TFTP server's directory (default `/tftp`).
        #[serde(default = "default_tftp_dir")]
        pub tftp_dir: String,
        /// Files on the gold image copied to tftpDir under their base name, e.g. `/media/sda/boot/vmlinuz-lts` (default none).
        #[serde(default)]
        pub boot_files: Vec<String>,
    }
}

/// One published file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// Its path on the PXE server.
    pub path: String,
    /// Its sha256, checked on the server before the rename.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: usize,
}

/// What `deployApkovl` returns and stores as the `overlay` resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverlayResource {
    /// The served overlay.
    pub overlay: Published,
    /// The boot files published to tftpDir.
    pub boot_files: Vec<Published>,
    /// When it ran (RFC 3339).
    pub timestamp: String,
}

fn check_path(field: &str, value: &str) -> Result<()> {
    if !value.starts_with('/') || value.chars().any(|c| c.is_control()) {
        return Err(error::invalid(format!(
            "{field} {value:?} must be an absolute path; fix it in the definition's globalArguments"
        )));
    }
    Ok(())
}

fn check_name(field: &str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.starts_with('.')
        || value.contains('/')
        || value.chars().any(|c| c.is_control())
    {
        return Err(error::invalid(format!(
            "{field} {value:?} must be a plain file name; fix it in the definition's globalArguments"
        )));
    }
    Ok(())
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl OverlayGlobals {
    /// The PXE server's connection settings: its host and port, the gold image's user and key.
    pub fn server(&self) -> SshSettings {
        SshSettings {
            host: self.server_host.clone(),
            port: self.server_port,
            ..self.ssh()
        }
    }

    /// Checks the paths and names before connecting anywhere.
    pub fn check(&self) -> Result<()> {
        check_path("overlayPath", &self.overlay_path)?;
        check_path("httpDir", &self.http_dir)?;
        check_name("overlayName", &self.overlay_name)?;
        check_path("tftpDir", &self.tftp_dir)?;
        for (i, file) in self.boot_files.iter().enumerate() {
            check_path(&format!("bootFiles[{i}]"), file)?;
            check_name(&format!("bootFiles[{i}]"), base_name(file))?;
        }
        Ok(())
    }
}

/// Reads a whole file from the remote as bytes.
fn fetch(session: &impl Remote, path: &str) -> Result<Vec<u8>> {
    let out = session.exec_with(&format!("cat {}", shell_quote(path)), None, None)?;
    if out.exit_code != 0 {
        return Err(error::failed(format!(
            "reading {path} on the gold image failed (exit {}): {}",
            out.exit_code,
            remote::bounded(String::from_utf8_lossy(&out.stderr).trim(), 2000)
        )));
    }
    Ok(out.stdout)
}

/// Writes `contents` to `dir/name`: upload to `dir/.name.orch-tmp`, check its sha256 on the
/// server, then rename. The served file is untouched unless every step succeeded.
pub fn publish(session: &impl Remote, dir: &str, name: &str, contents: &[u8]) -> Result<Published> {
    let dir = dir.trim_end_matches('/');
    let path = format!("{dir}/{name}");
    let temp = format!("{dir}/.{name}.orch-tmp");
    let sha256 = hex::encode(Sha256::digest(contents));
    session.run_ok(
        &format!("mkdir -p {}", shell_quote(dir)),
        &format!("creating {dir}"),
    )?;
    let discard = || {
        let _ = session.run(&format!("rm -f {}", shell_quote(&temp)));
    };
    if let Err(e) = session.upload(&temp, contents, 0o644) {
        discard();
        return Err(error::failed(format!(
            "uploading {path} failed; the served file is unchanged: {e}"
        )));
    }
    let sum = session.run_ok(
        &format!("sha256sum {}", shell_quote(&temp)),
        &format!("checking the upload of {path}"),
    );
    let sum = match sum {
        Ok(sum) => sum,
        Err(e) => {
            discard();
            return Err(e);
        }
    };
    if sum.split_whitespace().next() != Some(sha256.as_str()) {
        discard();
        return Err(error::failed(format!(
            "the upload of {path} arrived corrupted (sha256 {} instead of {sha256}); the served \
             file is unchanged, run the method again",
            sum.split_whitespace().next().unwrap_or("<none>")
        )));
    }
    session.run_ok(
        &format!("mv -f {} {}", shell_quote(&temp), shell_quote(&path)),
        &format!("moving the upload into {path}"),
    )?;
    Ok(Published {
        path,
        sha256,
        bytes: contents.len(),
    })
}

/// `lbu package` on the gold image, then the overlay (and boot files) published on the server.
pub fn deploy<C: Connector>(
    connector: &C,
    globals: &OverlayGlobals,
    model: &str,
    now: &str,
) -> Result<OverlayResource> {
    globals.check()?;
    let server_settings = globals.server();
    server_settings.target(model)?;
    let gold = remote::connect(connector, &globals.ssh(), model)?;
    gold.run_ok(
        &format!("lbu package {}", shell_quote(&globals.overlay_path)),
        "`lbu package` on the gold image",
    )?;
    let overlay = fetch(&gold, &globals.overlay_path)?;
    let mut boot = Vec::new();
    for file in &globals.boot_files {
        boot.push((base_name(file), fetch(&gold, file)?));
    }
    drop(gold);
    let server = remote::connect(connector, &server_settings, model)?;
    let overlay = publish(&server, &globals.http_dir, &globals.overlay_name, &overlay)?;
    let mut boot_files = Vec::new();
    for (name, contents) in boot {
        boot_files.push(publish(&server, &globals.tftp_dir, name, &contents)?);
    }
    Ok(OverlayResource {
        overlay,
        boot_files,
        timestamp: now.to_string(),
    })
}
