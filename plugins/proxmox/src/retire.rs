//! Resources that disappear: after a complete listing, what a sync wrote before and no longer
//! sees is retired (a tombstone version; history stays).

use std::collections::HashSet;

/// The names among `before` (the spec's live resources before the sync) that the sync did not
/// see and that `in_scope` says the listing covered, sorted. A sync calls this only after a
/// complete listing; `in_scope` narrows it further (a pool's volumes, a task window).
pub fn stale(
    before: &[String],
    seen: &HashSet<String>,
    in_scope: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut gone: Vec<String> = before
        .iter()
        .filter(|name| !seen.contains(name.as_str()) && in_scope(name))
        .cloned()
        .collect();
    gone.sort();
    gone.dedup();
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unseen_names_in_scope_are_stale() {
        let before: Vec<String> = ["a", "b", "local:x", "other:y"].map(String::from).to_vec();
        let seen: HashSet<String> = ["a"].map(String::from).into();
        assert_eq!(stale(&before, &seen, |_| true), ["b", "local:x", "other:y"]);
        assert_eq!(
            stale(&before, &seen, |n| n.starts_with("local:")),
            ["local:x"]
        );
        assert!(stale(&[], &seen, |_| true).is_empty());
    }
}
