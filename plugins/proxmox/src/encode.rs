//! Percent-encoding for URL path segments and `application/x-www-form-urlencoded` bodies.
//!
//! Hand-written because the rules needed here are tiny and a URL crate would add weight to
//! every plugin download.

use std::fmt::Write;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Encodes one URL path segment (node names, UPIDs): everything but RFC 3986 unreserved bytes.
pub fn path_segment(text: &str) -> String {
    encode(text, is_unreserved)
}

/// Encodes one form key or value. `@` stays literal (it is legal there and keeps
/// `username=root@pam` readable in logs); spaces become `%20`, which every form decoder accepts.
pub fn form_component(text: &str) -> String {
    encode(text, |b| is_unreserved(b) || b == b'@')
}

/// Encodes key/value pairs as a form body, in the given order.
pub fn form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&form_component(k.as_ref()));
        out.push('=');
        out.push_str(&form_component(v.as_ref()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_body_keeps_the_user_readable_and_escapes_the_password() {
        let body = form(&[("username", "root@pam"), ("password", "p&ss=w rd+ü/%")]);
        assert_eq!(
            body,
            "username=root@pam&password=p%26ss%3Dw%20rd%2B%C3%BC%2F%25"
        );
    }

    #[test]
    fn boot_order_value_is_escaped_so_separators_survive() {
        assert_eq!(
            form(&[("boot", "order=net0;scsi0")]),
            "boot=order%3Dnet0%3Bscsi0"
        );
    }

    #[test]
    fn upid_path_segment_escapes_colons_and_at() {
        assert_eq!(
            path_segment("UPID:pve:0000A1B2:00C0FFEE:6819A3C2:qmstart:108:root@pam!orch:"),
            "UPID%3Apve%3A0000A1B2%3A00C0FFEE%3A6819A3C2%3Aqmstart%3A108%3Aroot%40pam%21orch%3A"
        );
    }

    #[test]
    fn empty_form_is_empty() {
        assert_eq!(form::<&str, &str>(&[]), "");
    }
}
