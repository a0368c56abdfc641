//! Reading one file of the repository as text: a regular file, of bounded size, in UTF-8.
//!
//! Every YAML file orch reads goes through here, so a FIFO, `/dev/zero`, a 2 GB file or a
//! file saved in another encoding is refused with its name instead of hanging, exhausting
//! memory or being misread.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::diagnostic::{Diagnostic, relative};

/// Largest YAML file orch reads. Hand-written definitions and workflows are a few KB; this
/// leaves room for generated ones while keeping one bad file from exhausting memory.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The UTF-8 byte order mark some editors put at the start of a file.
const BOM: char = '\u{feff}';

/// Reads `path` (shown relative to `root`) as UTF-8 text without a byte order mark.
pub fn read_text(root: &Path, path: &Path) -> Result<String, Diagnostic> {
    let shown = relative(root, path);
    let fail = |message: String| Diagnostic::file(&shown, message);
    // Checked before opening: opening a FIFO blocks until someone writes to it.
    let meta = fs::metadata(path).map_err(|e| {
        fail(format!(
            "cannot read the file: {e}; check that it exists and is readable"
        ))
    })?;
    if !meta.is_file() {
        return Err(fail(format!(
            "is not a regular file ({}); orch only reads plain files here, replace it with one",
            file_kind(&meta)
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(too_big(meta.len())));
    }
    let file = fs::File::open(path).map_err(|e| {
        fail(format!(
            "cannot read the file: {e}; check that it exists and is readable"
        ))
    })?;
    // Bounded again while reading: the size can change between the check and the read.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(too_big(bytes.len() as u64)));
    }
    decode(bytes, &shown)
}

/// Decodes file contents as UTF-8, dropping a leading byte order mark. Invalid bytes are
/// reported with their line, column and byte offset.
pub fn decode(bytes: Vec<u8>, file: &Path) -> Result<String, Diagnostic> {
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with(BOM) {
                text.drain(..BOM.len_utf8());
            }
            Ok(text)
        }
        Err(e) => Err(invalid_utf8(
            e.as_bytes(),
            e.utf8_error().valid_up_to(),
            file,
        )),
    }
}

/// `text` without a leading byte order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

fn invalid_utf8(bytes: &[u8], offset: usize, file: &Path) -> Diagnostic {
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Diagnostic {
            line: Some(1),
            column: Some(1),
            ..Diagnostic::file(
                file,
                "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8",
            )
        };
    }
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // Columns count characters, as an editor shows them; the line start is valid UTF-8.
    let column = String::from_utf8_lossy(&bytes[line_start..offset])
        .chars()
        .count()
        + 1;
    Diagnostic {
        line: Some(line),
        column: Some(column),
        ..Diagnostic::file(
            file,
            format!(
                "invalid UTF-8 (byte 0x{:02x} at byte offset {offset}); save the file as UTF-8",
                bytes[offset]
            ),
        )
    }
}

fn too_big(len: u64) -> String {
    format!(
        "the file is {len} bytes, more than the {} MiB orch reads from one YAML file; split \
         it into several files or remove generated content",
        MAX_FILE_BYTES / (1024 * 1024)
    )
}

fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(bytes: &[u8]) -> Result<String, Diagnostic> {
        decode(bytes.to_vec(), Path::new("models/x.yaml"))
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        assert_eq!(decoded(b"\xef\xbb\xbftype: a\n").unwrap(), "type: a\n");
        assert_eq!(strip_bom("\u{feff}a"), "a");
        assert_eq!(strip_bom("a"), "a");
    }

    #[test]
    fn invalid_utf8_names_line_column_and_offset() {
        let d = decoded(b"type: a\nglobalArguments:\n  k: caf\xe9\n").unwrap_err();
        assert_eq!(
            d.to_string(),
            "models/x.yaml:3:9: invalid UTF-8 (byte 0xe9 at byte offset 33); save the file as UTF-8"
        );
    }

    #[test]
    fn columns_count_characters_before_the_bad_byte() {
        let d = decoded("k: é".bytes().chain([0xff]).collect::<Vec<_>>().as_slice()).unwrap_err();
        assert_eq!((d.line, d.column), (Some(1), Some(5)));
    }

    #[test]
    fn utf16_is_named() {
        let d = decoded(b"\xff\xfet\x00").unwrap_err();
        assert!(d.message.contains("UTF-16"), "{d}");
    }

    #[test]
    fn special_and_oversized_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("models")).unwrap();
        fs::create_dir(root.join("models/dir.yaml")).unwrap();
        let d = read_text(root, &root.join("models/dir.yaml")).unwrap_err();
        assert_eq!(d.file, Path::new("models/dir.yaml"));
        assert!(
            d.message.contains("not a regular file (a directory)"),
            "{d}"
        );

        let big = root.join("models/big.yaml");
        let f = fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let d = read_text(root, &big).unwrap_err();
        assert!(d.message.contains("more than the 4 MiB"), "{d}");

        let d = read_text(root, &root.join("models/missing.yaml")).unwrap_err();
        assert!(d.message.starts_with("cannot read the file"), "{d}");
    }

    #[test]
    fn symlink_to_a_device_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let d = read_text(dir.path(), &link).unwrap_err();
        assert!(d.message.contains("a device"), "{d}");
    }
}
