//! "Did you mean …?" for names the user mistyped.

/// The candidate closest to `name`, if one is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&name.to_lowercase(), &c.to_lowercase());
        if score >= 0.8 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn close_typos_are_suggested_and_strangers_are_not() {
        assert_eq!(closest("flet", ["fleet", "keebDev02"]), Some("fleet"));
        assert_eq!(closest("zzz", ["fleet", "keebDev02"]), None);
    }
}
