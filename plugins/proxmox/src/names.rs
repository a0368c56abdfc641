//! "Did you mean …?" for VM names.

/// Up to `limit` names close to `wanted`: same text ignoring case, containing it, or within a
/// small edit distance; closest first, then alphabetical.
pub fn close_names<'a>(
    wanted: &str,
    names: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let wanted_lower = wanted.to_lowercase();
    let budget = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let score = if lower == wanted_lower {
                0
            } else if !wanted_lower.is_empty()
                && (lower.contains(&wanted_lower) || wanted_lower.contains(&lower))
            {
                1
            } else {
                let d = levenshtein(&lower, &wanted_lower, budget + 1);
                if d > budget {
                    return None;
                }
                d + 1
            };
            Some((score, name))
        })
        .collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(limit).map(|(_, n)| n).collect()
}

// Edit distance, giving up (returning `cap`) once every cell of a row reaches `cap`, so a
// 10,000-VM node costs little more than a scan.
fn levenshtein(a: &str, b: &str, cap: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) >= cap {
        return cap;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        if cur.iter().all(|&d| d >= cap) {
            return cap;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()].min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &[&str] = &[
        "allthemons",
        "atm10",
        "calamity",
        "factorio",
        "gold-image",
        "meatballcraft",
        "satisfactory",
        "slate",
        "tftp-server",
        "VM 102",
    ];

    #[test]
    fn typo_suggests_the_real_name() {
        assert_eq!(
            close_names("atm11", FLEET.iter().copied(), 5),
            vec!["atm10"]
        );
        assert_eq!(
            close_names("calamty", FLEET.iter().copied(), 5),
            vec!["calamity"]
        );
    }

    #[test]
    fn case_and_spacing_slips_suggest_names_with_spaces() {
        assert_eq!(close_names("vm 102", FLEET.iter().copied(), 5)[0], "VM 102");
        assert_eq!(close_names("VM102", FLEET.iter().copied(), 5)[0], "VM 102");
    }

    #[test]
    fn substrings_match() {
        assert_eq!(
            close_names("gold", FLEET.iter().copied(), 5),
            vec!["gold-image"]
        );
    }

    #[test]
    fn unrelated_names_suggest_nothing() {
        assert!(close_names("kubernetes-master", FLEET.iter().copied(), 5).is_empty());
    }

    #[test]
    fn levenshtein_basics() {
        assert_eq!(levenshtein("kitten", "sitting", 10), 3);
        assert_eq!(levenshtein("", "abc", 10), 3);
        assert_eq!(levenshtein("abcdef", "uvwxyz", 2), 2);
    }
}
