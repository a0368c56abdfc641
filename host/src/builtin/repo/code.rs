//! `syncCode`: the repository's files to the remote directory, only those whose sha256 differs,
//! and removal there of the files removed here.

use super::remote::{Remote, quote};
use super::{BuiltinContext, Globals};
use crate::runtime::wit::v0_2::PluginError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level entries never synced and never removed on the remote: the runtime directory
/// (data, cache, vault key), version control, the binary `syncBinary` puts in `bin/`, and the
/// marker of a directory syncCode deployed.
pub(super) const NOT_SYNCED: [&str; 4] = [".orch", ".git", "bin", MARKER];

/// Marks a remote directory syncCode deployed: files there that the repository does not have
/// are removed only in such a directory, never in one that held files of its own.
const MARKER: &str = ".orch-deployed";

/// Paths removed per `rm` command.
const REMOVE_BATCH: usize = 200;

/// A file of the repository: its sha256 and the mode to give it.
struct LocalFile {
    sha256: String,
    mode: u32,
}

/// Every regular file under `root` but [`NOT_SYNCED`], by `/`-separated relative path.
/// Symbolic links are skipped: one could point outside the repository.
fn local_files(root: &Path) -> Result<BTreeMap<String, LocalFile>, PluginError> {
    let mut files = BTreeMap::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            PluginError::Failed(format!("cannot read directory {}: {e}", dir.display()))
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                PluginError::Failed(format!("cannot read directory {}: {e}", dir.display()))
            })?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(PluginError::InvalidArguments(format!(
                    "{}: the file name is not UTF-8; rename it to deploy the repository",
                    path.display()
                )));
            };
            if prefix.is_empty() && NOT_SYNCED.contains(&name) {
                continue;
            }
            if name.contains(['\n', '\\']) {
                return Err(PluginError::InvalidArguments(format!(
                    "{}: a file name holding a newline or backslash cannot be compared with the \
                     remote's; rename it to deploy the repository",
                    path.display()
                )));
            }
            let rel = format!("{prefix}{name}");
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| PluginError::Failed(format!("cannot read {}: {e}", path.display())))?;
            if meta.is_dir() {
                pending.push((path, format!("{rel}/")));
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).map_err(|e| {
                    PluginError::Failed(format!("cannot read {}: {e}", path.display()))
                })?;
                use std::os::unix::fs::PermissionsExt;
                let executable = meta.permissions().mode() & 0o111 != 0;
                files.insert(
                    rel,
                    LocalFile {
                        sha256: hex::encode(Sha256::digest(&bytes)),
                        mode: if executable { 0o755 } else { 0o644 },
                    },
                );
            }
        }
    }
    Ok(files)
}

/// `HASH  ./rel` lines (GNU/BSD `sha256sum` output) as rel → hash. Names the tool escaped
/// (a leading backslash) are left alone: no local file can have such a name.
pub(super) fn parse_listing(stdout: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .filter_map(|l| {
            let (hash, name) = l.split_once(' ')?;
            let name = name.strip_prefix(['*', ' '])?;
            let rel = name.strip_prefix("./")?;
            Some((rel.to_string(), hash.to_ascii_lowercase()))
        })
        .collect()
}

/// The remote files (but [`NOT_SYNCED`]) and their sha256.
async fn remote_files(
    g: &Globals,
    remote: &mut Remote<'_>,
) -> Result<BTreeMap<String, String>, PluginError> {
    let prune = NOT_SYNCED
        .iter()
        .map(|n| format!("-path ./{n}"))
        .collect::<Vec<_>>()
        .join(" -o ");
    let command = format!(
        "if [ -d {dir} ]; then cd -- {dir} && find . \\( {prune} \\) -prune -o -type f -exec {sum} {{}} +; fi",
        dir = quote(g.dir()),
        sum = g.sha256_command
    );
    let out = remote
        .run(&format!("listing {}", g.dir()), &command, None)
        .await?;
    Ok(parse_listing(&out))
}

/// One digest over every synced file's path and sha256.
fn digest(files: &BTreeMap<String, LocalFile>) -> String {
    let mut h = Sha256::new();
    for (rel, f) in files {
        h.update(format!("{}  {rel}\n", f.sha256));
    }
    hex::encode(h.finalize())
}

/// Runs `syncCode`; with `dry_run`, only says what it would upload and remove.
pub(super) async fn sync(
    ctx: &BuiltinContext<'_>,
    g: &Globals,
    remote: &mut Remote<'_>,
    dry_run: bool,
) -> Result<(&'static str, Value), PluginError> {
    let root = ctx.repo_root;
    let mut local = local_files(root)?;
    local.retain(|rel, _| !g.excluded(rel));
    let marker = g.path(MARKER);
    let deployed = remote
        .exec(&format!("test -e {}", quote(&marker)), None)
        .await?
        .exit_code
        == 0;
    let mut there = remote_files(g, remote).await?;
    there.retain(|rel, _| !g.excluded(rel));
    if !deployed && let Some(first) = there.keys().next() {
        return Err(PluginError::Conflict(format!(
            "ssh {}: {} holds {} files that orch did not deploy (such as {first}); syncCode \
             removes the files deleted from the repository, so it deploys only into a new or \
             empty directory or one it deployed before: set globalArguments.dir to another \
             directory, or empty this one",
            remote.shown,
            g.dir(),
            there.len()
        )));
    }
    let changed: Vec<&String> = local
        .iter()
        .filter(|(rel, f)| there.get(*rel) != Some(&f.sha256))
        .map(|(rel, _)| rel)
        .collect();
    let removed: Vec<&String> = there
        .keys()
        .filter(|rel| !local.contains_key(*rel))
        .collect();
    let summary = |uploaded: &str, removed_key: &str| {
        let mut m = serde_json::Map::new();
        m.insert("dir".into(), json!(g.dir()));
        m.insert("files".into(), json!(local.len()));
        m.insert(uploaded.into(), json!(changed.len()));
        m.insert(removed_key.into(), json!(removed.len()));
        m.insert("digest".into(), json!(digest(&local)));
        let first = |list: &[&String]| json!(list.iter().take(100).collect::<Vec<_>>());
        m.insert(format!("{uploaded}Files"), first(&changed));
        m.insert(format!("{removed_key}Files"), first(&removed));
        Value::Object(m)
    };
    if dry_run {
        return Ok(("code", summary("wouldUpload", "wouldRemove")));
    }
    if !deployed {
        remote
            .run(
                &format!("creating {}", g.dir()),
                &format!(
                    "mkdir -p -- {} && echo 'deployed by orch (orch/repo syncCode): files here that the repository does not have are removed' > {}",
                    quote(g.dir()),
                    quote(&marker)
                ),
                None,
            )
            .await?;
    }
    let parents: BTreeSet<String> = changed
        .iter()
        .filter_map(|rel| rel.rsplit_once('/').map(|(d, _)| g.path(d)))
        .collect();
    if !parents.is_empty() {
        let dirs: Vec<String> = parents.iter().map(|d| quote(d)).collect();
        remote
            .run(
                "creating directories",
                &format!("mkdir -p -- {}", dirs.join(" ")),
                None,
            )
            .await?;
    }
    for rel in &changed {
        let path = root.join(rel);
        let bytes = std::fs::read(&path)
            .map_err(|e| PluginError::Failed(format!("cannot read {}: {e}", path.display())))?;
        remote.upload(&g.path(rel), bytes, local[*rel].mode).await?;
    }
    for batch in removed.chunks(REMOVE_BATCH) {
        let paths: Vec<String> = batch.iter().map(|rel| quote(&format!("./{rel}"))).collect();
        remote
            .run(
                "removing files deleted from the repository",
                &format!("cd -- {} && rm -f -- {}", quote(g.dir()), paths.join(" ")),
                None,
            )
            .await?;
    }
    Ok(("code", summary("uploaded", "removed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha256sum_listing_is_read_by_relative_path() {
        let out = b"aa11  ./orch.yaml\nbb22  ./models/a b.yaml\nBB33 *./x\n\\cc  ./we\\\\ird\n";
        let listed = parse_listing(out);
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert_eq!(listed["orch.yaml"], "aa11");
        assert_eq!(listed["models/a b.yaml"], "bb22");
        assert_eq!(listed["x"], "bb33");
    }

    #[test]
    fn exclude_covers_a_path_and_what_is_under_it_only() {
        let g: Globals = serde_json::from_value(json!({
            "host": "h", "port": 22, "user": "u", "sshKey": "k", "dir": "/srv",
            "sha256Command": "sha256sum", "exclude": ["target", "notes/private/"]
        }))
        .unwrap();
        for (rel, excluded) in [
            ("target", true),
            ("target/debug/orch", true),
            ("targets/x", false),
            ("notes/private/a.md", true),
            ("notes/public.md", false),
            ("orch.yaml", false),
        ] {
            assert_eq!(g.excluded(rel), excluded, "{rel}");
        }
    }

    #[test]
    fn local_files_skip_the_runtime_directory_git_and_bin() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "orch.yaml",
            "models/a.yaml",
            ".orch/data.redb",
            ".git/HEAD",
            "bin/orch",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let files = local_files(dir.path()).unwrap();
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(names, ["models/a.yaml", "orch.yaml"]);
    }
}
