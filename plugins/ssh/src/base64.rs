//! Standard base64 decoding for `upload`'s `contentBase64` (the plugin keeps to the SDK's
//! dependencies, and decoding is a few lines).

/// Decodes standard base64 (`A–Z a–z 0–9 + /`); whitespace is skipped and padding is optional,
/// because the text usually comes from `base64` output pasted into YAML.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    let mut padding = 0usize;
    for (i, c) in text.char_indices() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == '=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return Err(format!("data after padding at offset {i}"));
        }
        let value = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' => 62,
            '/' => 63,
            _ => return Err(format!("invalid character {c:?} at offset {i}")),
        };
        symbols += 1;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // One leftover symbol (6 bits) cannot encode a byte; padding beyond two is malformed.
    if symbols % 4 == 1 || padding > 2 || (padding > 0 && !(symbols + padding).is_multiple_of(4)) {
        return Err("truncated or mis-padded base64".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_padded_unpadded_and_wrapped_text() {
        assert_eq!(decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode("aGVs\nbG8g\r\nd29y bGQ=").unwrap(), b"hello world");
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("AAEC/w==").unwrap(), [0, 1, 2, 255]);
    }

    #[test]
    fn rejects_garbage_and_bad_padding() {
        assert!(decode("aGV$bG8=").is_err());
        assert!(decode("a").is_err());
        assert!(decode("aGVsbG8=x").is_err());
        assert!(decode("aGVsbA===").is_err());
        assert!(decode("aGVsbG8==").is_err());
    }
}
