//! `syncBinary`: the running orch binary to `<dir>/bin/orch`, streamed in chunks to a temporary
//! file, checked by sha256 on the remote, then made executable and renamed into place.

use super::Globals;
use super::remote::{Remote, quote};
use crate::runtime::wit::v0_2::PluginError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Bytes sent per SSH command (each one a `cat >>` of the temporary file).
const CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// The sha256 and size of the file at `path`, read in chunks.
fn local_digest(path: &Path) -> Result<(String, u64), PluginError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| PluginError::Failed(format!("cannot read {}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0; CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| PluginError::Failed(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// The sha256 the remote's `sha256Command` prints for `path`, when it exists.
async fn remote_digest(
    g: &Globals,
    remote: &mut Remote<'_>,
    path: &str,
) -> Result<Option<String>, PluginError> {
    let out = remote
        .exec(&format!("{} -- {}", g.sha256_command, quote(path)), None)
        .await?;
    if out.exit_code != 0 {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_ascii_lowercase))
}

/// A name for the temporary file no other upload uses.
fn temp_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{nanos:x}", std::process::id())
}

/// Sends the file at `exe` to `temp` in chunks.
async fn send(exe: &Path, temp: &str, remote: &mut Remote<'_>) -> Result<(), PluginError> {
    let mut file = std::fs::File::open(exe)
        .map_err(|e| PluginError::Failed(format!("cannot read {}: {e}", exe.display())))?;
    remote
        .run(
            "creating the upload file",
            &format!("umask 077 && : > {}", quote(temp)),
            None,
        )
        .await?;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        (&mut file)
            .take(CHUNK_BYTES as u64)
            .read_to_end(&mut chunk)
            .map_err(|e| PluginError::Failed(format!("cannot read {}: {e}", exe.display())))?;
        if chunk.is_empty() {
            return Ok(());
        }
        remote
            .run(
                &format!("uploading to {temp}"),
                &format!("cat >> {}", quote(temp)),
                Some(chunk),
            )
            .await?;
    }
}

/// Runs `syncBinary`; with `dry_run`, only says whether it would upload.
pub(super) async fn sync(
    g: &Globals,
    remote: &mut Remote<'_>,
    dry_run: bool,
) -> Result<(&'static str, Value), PluginError> {
    let exe = std::env::current_exe()
        .map_err(|e| PluginError::Failed(format!("cannot find the running orch binary: {e}")))?;
    let (sha256, bytes) = local_digest(&exe)?;
    let dest = g.path("bin/orch");
    let resource = |uploaded: bool| json!({"path": dest, "bytes": bytes, "sha256": sha256, "uploaded": uploaded});
    if remote_digest(g, remote, &dest).await?.as_deref() == Some(sha256.as_str()) {
        return Ok(("binary", resource(false)));
    }
    if dry_run {
        return Ok(("binary", resource(true)));
    }
    remote
        .run(
            "creating the bin directory",
            &format!("mkdir -p -- {}", quote(&g.path("bin"))),
            None,
        )
        .await?;
    let temp = format!("{dest}.orch-upload.{}", temp_suffix());
    let remove = format!("rm -f -- {}", quote(&temp));
    if let Err(e) = send(&exe, &temp, remote).await {
        let _ = remote.exec(&remove, None).await;
        return Err(e);
    }
    let got = remote_digest(g, remote, &temp).await;
    let got = match got {
        Ok(Some(got)) => got,
        Ok(None) | Err(_) => {
            let _ = remote.exec(&remove, None).await;
            return Err(PluginError::Failed(format!(
                "ssh {}: `{} {temp}` printed no sha256; the upload was removed and {dest} is \
                 unchanged (set globalArguments.sha256Command to the remote's sha256 tool)",
                remote.shown, g.sha256_command
            )));
        }
    };
    if got != sha256 {
        let _ = remote.exec(&remove, None).await;
        return Err(PluginError::Failed(format!(
            "ssh {}: the uploaded binary's sha256 is {got}, not {sha256} ({} bytes from {}); the \
             upload was removed and {dest} is unchanged. Run syncBinary again; if it fails again, \
             check the remote's disk",
            remote.shown,
            bytes,
            exe.display()
        )));
    }
    let install = format!(
        "chmod 0755 {t} && mv -f {t} {d}",
        t = quote(&temp),
        d = quote(&dest)
    );
    if let Err(e) = remote
        .run(&format!("installing {dest}"), &install, None)
        .await
    {
        let _ = remote.exec(&remove, None).await;
        return Err(e);
    }
    Ok(("binary", resource(true)))
}
