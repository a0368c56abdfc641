//! A plugin's types as the registry holds them: each type's name, and its description either
//! decoded (a live describe()) or still the JSON text a cache file held, decoded the first time
//! the type is used. A run uses a few types of the many installed; decoding every schema of
//! every installed plugin at start-up was most of a one-step run's start (issue 9).
//!
//! The cache format: one line of JSON (`{"types":[[name, length], …],"rejected":[[name,
//! problem], …]}`), then each type's description as JSON, one after another, of those lengths.

use super::{Described, TypeDescription};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// One type's description, decoded or as the JSON text it was stored as.
#[derive(Clone)]
pub(crate) enum Held {
    /// Decoded already (a live describe() answer, or a type built into orch).
    Decoded(Arc<TypeDescription>),
    /// This range of a cache file's body.
    Text(Arc<[u8]>, Range<usize>),
}

impl Held {
    /// The description, decoded if it was text; the error says what could not be read.
    pub(crate) fn decode(&self, name: &str) -> Result<Arc<TypeDescription>, String> {
        match self {
            Held::Decoded(d) => Ok(d.clone()),
            Held::Text(body, range) => {
                let d: TypeDescription = serde_json::from_slice(&body[range.clone()])
                    .map_err(|e| format!("its cached description does not decode: {e}"))?;
                if d.name != name {
                    return Err(format!(
                        "its cached description is of type `{}`, not `{name}`",
                        d.name
                    ));
                }
                Ok(Arc::new(d))
            }
        }
    }
}

/// A plugin's accepted types (name, description) and refused ones (name, why).
#[derive(Clone, Default)]
pub(crate) struct Listing {
    /// Accepted types, in describe() order.
    pub types: Vec<(String, Held)>,
    /// (type name, problem) for each type refused.
    pub rejected: Vec<(String, String)>,
}

/// The cache file's first line.
#[derive(Serialize, Deserialize)]
struct Header {
    types: Vec<(String, usize)>,
    rejected: Vec<(String, String)>,
}

impl Listing {
    /// A live describe() answer, already decoded.
    pub(crate) fn decoded(described: Described) -> Listing {
        Listing {
            types: described
                .types
                .into_iter()
                .map(|t| (t.name.clone(), Held::Decoded(Arc::new(t))))
                .collect(),
            rejected: described.rejected,
        }
    }

    /// Every type decoded: the whole answer, as describe() gave it.
    pub(crate) fn described(&self) -> Result<Described, String> {
        let mut types = Vec::with_capacity(self.types.len());
        for (name, held) in &self.types {
            let d = held
                .decode(name)
                .map_err(|e| format!("type `{name}`: {e}"))?;
            types.push(Arc::unwrap_or_clone(d));
        }
        Ok(Described {
            types,
            rejected: self.rejected.clone(),
        })
    }

    /// `described` in the cache format.
    pub(crate) fn encode(described: &Described) -> Result<Vec<u8>, serde_json::Error> {
        let mut texts = Vec::with_capacity(described.types.len());
        for t in &described.types {
            texts.push(serde_json::to_vec(t)?);
        }
        let header = Header {
            types: described
                .types
                .iter()
                .zip(&texts)
                .map(|(t, text)| (t.name.clone(), text.len()))
                .collect(),
            rejected: described.rejected.clone(),
        };
        let mut out = serde_json::to_vec(&header)?;
        out.push(b'\n');
        for text in texts {
            out.extend_from_slice(&text);
        }
        Ok(out)
    }

    /// Reads the cache format; None if `body` is not in it. Only the first line is decoded:
    /// each type's text is kept as it is until the type is used.
    pub(crate) fn decode(body: Vec<u8>) -> Option<Listing> {
        let newline = body.iter().position(|b| *b == b'\n')?;
        let header: Header = serde_json::from_slice(&body[..newline]).ok()?;
        let body: Arc<[u8]> = body.into();
        let mut at = newline + 1;
        let mut types = Vec::with_capacity(header.types.len());
        for (name, len) in header.types {
            let end = at.checked_add(len).filter(|end| *end <= body.len())?;
            types.push((name, Held::Text(body.clone(), at..end)));
            at = end;
        }
        if at != body.len() {
            return None;
        }
        Some(Listing {
            types,
            rejected: header.rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn type_named(name: &str) -> TypeDescription {
        serde_json::from_value(json!({
            "name": name,
            "version": "2026.01.01.1",
            "description": "line one\nline two",
            "globalArgumentsSchema": { "type": "object" },
            "resources": [],
            "methods": [],
        }))
        .unwrap()
    }

    fn described() -> Described {
        Described {
            types: vec![type_named("a/one"), type_named("a/two")],
            rejected: vec![("a/bad".into(), "no methods\nat all".into())],
        }
    }

    #[test]
    fn a_listing_reads_back_what_was_encoded_decoding_a_type_only_when_asked() {
        let body = Listing::encode(&described()).unwrap();
        let listing = Listing::decode(body).unwrap();
        let names: Vec<&str> = listing.types.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a/one", "a/two"]);
        assert!(matches!(listing.types[0].1, Held::Text(..)));
        assert_eq!(listing.rejected, described().rejected);
        let two = listing.types[1].1.decode("a/two").unwrap();
        assert_eq!(two.name, "a/two");
        assert_eq!(two.description, "line one\nline two");
        let all = listing.described().unwrap();
        assert_eq!(
            serde_json::to_value(&all.types).unwrap(),
            serde_json::to_value(&described().types).unwrap()
        );
    }

    #[test]
    fn a_truncated_padded_or_foreign_body_is_not_a_listing() {
        let body = Listing::encode(&described()).unwrap();
        let mut padded = body.clone();
        padded.push(b' ');
        for bad in [
            body[..body.len() - 1].to_vec(),
            padded,
            b"{\"types\":[],\"rejected\":[]}".to_vec(),
            serde_json::to_vec(&described()).unwrap(),
            b"{\"types\":[[\"x\",18446744073709551615]],\"rejected\":[]}\n".to_vec(),
            Vec::new(),
        ] {
            assert!(
                Listing::decode(bad.clone()).is_none(),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
    }

    #[test]
    fn a_type_whose_text_is_not_its_description_says_so_when_used() {
        let mut body = Listing::encode(&described()).unwrap();
        // Swap the names in the header: each text now sits under the other's name.
        let text = String::from_utf8(body.clone()).unwrap();
        let newline = text.find('\n').unwrap();
        let header = text[..newline]
            .replace("a/one", "a/tmp")
            .replace("a/two", "a/one")
            .replace("a/tmp", "a/two");
        body = format!("{header}{}", &text[newline..]).into_bytes();
        let listing = Listing::decode(body).unwrap();
        let err = listing.types[0].1.decode("a/two").unwrap_err();
        assert!(err.contains("is of type `a/one`, not `a/two`"), "{err}");
        let broken = Held::Text(Arc::from(&b"{\"name\":"[..]), 0..8);
        let err = broken.decode("a/one").unwrap_err();
        assert!(err.contains("does not decode"), "{err}");
    }
}
