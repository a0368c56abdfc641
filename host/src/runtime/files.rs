//! Reading files that a plugin bundle or the cache supplies: only regular files, only up to a
//! size, and never blocking on a FIFO or device.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

/// Largest `plugin.toml` the host reads.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024;
/// Largest plugin component the host reads.
pub const MAX_WASM_BYTES: u64 = 128 * 1024 * 1024;
/// Largest precompiled component the host reads back from its cache.
pub const MAX_CWASM_BYTES: u64 = 1024 * 1024 * 1024;

/// Reads `path` whole if it is a regular file (a symlink to one is fine) of at most `max`
/// bytes. FIFOs, devices, directories and oversize files are refused before anything is read;
/// the error says what the file is and the limit.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let (file, meta) = open_regular(path, max)?;
    read_opened(file, &meta, max)
}

/// Reads a file [`open_regular`] opened (with the metadata it returned), still refusing to
/// read past `max` bytes.
pub fn read_opened(file: File, meta: &std::fs::Metadata, max: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The size is checked again while reading: the file may grow after the stat.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("grew past the {max} bytes this orch reads"));
    }
    Ok(bytes)
}

/// Opens `path` for reading if it is a regular file of at most `max` bytes (see
/// [`read_regular`]), with its metadata as of the open.
pub fn open_regular(path: &Path, max: u64) -> Result<(File, std::fs::Metadata), String> {
    let file = open_nonblocking(path).map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "is not a regular file (it is {}); replace it with the real file",
            kind_of(&meta.file_type())
        ));
    }
    if meta.len() > max {
        return Err(format!(
            "is {} bytes, larger than the {max} bytes this orch reads",
            meta.len()
        ));
    }
    Ok((file, meta))
}

/// Opens for reading without blocking: opening a FIFO with no writer would otherwise hang.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_regular(&p, 5).unwrap(), b"hello");
    }

    #[test]
    fn an_oversize_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        // Sparse: 2 GiB on paper, nothing on disk.
        File::create(&p).unwrap().set_len(2 << 30).unwrap();
        let err = read_regular(&p, MAX_WASM_BYTES).unwrap_err();
        assert!(err.contains("2147483648 bytes, larger than"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_dev_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plugin.wasm");
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let err = read_regular(&p, MAX_WASM_BYTES).unwrap_err();
        assert!(err.contains("character device"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plugin.toml");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&p, MAX_MANIFEST_BYTES).unwrap_err();
        assert!(err.contains("FIFO"), "{err}");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_regular(dir.path(), 10).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
