//! `file.contents(path)`: a repository file's text for an expression.
//!
//! Plugins cannot read the repository, so a workflow passes a file (a dashboard's JSON, an
//! alert rule) as an argument. The path is relative to the repository root and must stay inside
//! it after symlinks are resolved; files larger than [`MAX_REPO_FILE_BYTES`] are refused.

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Component, Path};

/// The largest file `file.contents` reads: 4 MiB, far above any dashboard.
pub const MAX_REPO_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads `path` (relative to `root`) as UTF-8 text, refusing anything outside `root` or over `max` bytes.
pub fn read_repo_file(root: &Path, path: &str, max: u64) -> Result<String, String> {
    let shown = root.display();
    if path.trim().is_empty() {
        return Err(
            "the path is empty; give a path relative to the repository root, e.g. \
             `dashboards/game-servers.json`"
                .to_string(),
        );
    }
    let rel = Path::new(path);
    if rel.has_root() || rel.is_absolute() {
        return Err(format!(
            "`{path}` is an absolute path; give a path relative to the repository root ({shown})"
        ));
    }
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "`{path}` leaves the repository ({shown}): `..` is not allowed; give a path inside it"
        ));
    }
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("cannot open the repository root {shown}: {e}"))?;
    let full = real_root.join(rel);
    let real = full.canonicalize().map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!(
            "file `{path}` does not exist in the repository ({}); check the path, it is \
             relative to the directory holding orch.yaml",
            full.display()
        ),
        _ => format!("cannot open `{path}` ({}): {e}", full.display()),
    })?;
    if !real.starts_with(&real_root) {
        return Err(format!(
            "`{path}` resolves to {}, outside the repository ({shown}); a symlink must point \
             inside the repository",
            real.display()
        ));
    }
    let file = fs::File::open(&real).map_err(|e| format!("cannot open `{path}`: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read `{path}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{path}` is not a regular file"));
    }
    let too_big = |len: u64| {
        format!(
            "`{path}` is {len} bytes, more than the {max} bytes file.contents reads; \
             split the file or trim it"
        )
    };
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    // The file may grow between the check and the read: read at most one byte past the cap.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{path}`: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{path}` is not UTF-8 text (invalid byte at offset {}); file.contents reads text files",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("dashboards")).expect("mkdir");
        fs::write(dir.path().join("dashboards/games.json"), "{\"uid\":\"g\"}").expect("write");
        dir
    }

    #[test]
    fn reads_a_file_relative_to_the_repository_root() {
        let dir = repo();
        let text = read_repo_file(dir.path(), "dashboards/games.json", MAX_REPO_FILE_BYTES);
        assert_eq!(text.as_deref(), Ok("{\"uid\":\"g\"}"));
        let dotted = read_repo_file(dir.path(), "./dashboards/games.json", MAX_REPO_FILE_BYTES);
        assert_eq!(dotted.as_deref(), Ok("{\"uid\":\"g\"}"));
    }

    #[test]
    fn dot_dot_escape_is_refused_even_when_it_comes_back_inside() {
        let dir = repo();
        for path in ["../secret.txt", "dashboards/../dashboards/games.json"] {
            let err = read_repo_file(dir.path(), path, MAX_REPO_FILE_BYTES).expect_err(path);
            assert!(err.contains("`..` is not allowed"), "{err}");
            assert!(err.contains(path), "{err}");
        }
    }

    #[test]
    fn absolute_path_is_refused() {
        let dir = repo();
        let path = dir.path().join("dashboards/games.json");
        let err = read_repo_file(dir.path(), path.to_str().unwrap(), MAX_REPO_FILE_BYTES)
            .expect_err("absolute");
        assert!(err.contains("is an absolute path"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_leaving_the_repository_is_refused_and_one_inside_is_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("token"), "secret").expect("write");
        let dir = repo();
        std::os::unix::fs::symlink(outside.path().join("token"), dir.path().join("leak"))
            .expect("symlink");
        let err = read_repo_file(dir.path(), "leak", MAX_REPO_FILE_BYTES).expect_err("escape");
        assert!(err.contains("outside the repository"), "{err}");
        assert!(!err.contains("secret\""), "{err}");
        std::os::unix::fs::symlink("dashboards/games.json", dir.path().join("inside"))
            .expect("symlink");
        assert!(read_repo_file(dir.path(), "inside", MAX_REPO_FILE_BYTES).is_ok());
    }

    #[test]
    fn missing_file_is_named() {
        let dir = repo();
        let err = read_repo_file(dir.path(), "dashboards/nope.json", MAX_REPO_FILE_BYTES)
            .expect_err("missing");
        assert!(
            err.contains("`dashboards/nope.json` does not exist"),
            "{err}"
        );
    }

    #[test]
    fn file_over_the_cap_is_refused_with_its_size() {
        let dir = repo();
        fs::write(dir.path().join("big.json"), vec![b' '; 101]).expect("write");
        let err = read_repo_file(dir.path(), "big.json", 100).expect_err("too big");
        assert!(
            err.contains("`big.json` is 101 bytes, more than the 100 bytes"),
            "{err}"
        );
        assert!(read_repo_file(dir.path(), "big.json", 101).is_ok());
    }

    #[test]
    fn directory_and_binary_files_are_refused() {
        let dir = repo();
        let err = read_repo_file(dir.path(), "dashboards", MAX_REPO_FILE_BYTES).expect_err("dir");
        assert!(err.contains("not a regular file"), "{err}");
        fs::write(dir.path().join("bin"), [0xff, 0xfe]).expect("write");
        let err = read_repo_file(dir.path(), "bin", MAX_REPO_FILE_BYTES).expect_err("binary");
        assert!(err.contains("not UTF-8"), "{err}");
    }
}
