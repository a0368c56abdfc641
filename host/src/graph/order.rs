//! Topological order over node indices, deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Nodes in dependency order (`deps[i]` lists the nodes `i` waits for); among nodes ready at
/// the same time the one with the smallest `key` comes first. Nodes on a loop, and nodes
/// waiting on them, are left out: callers reject loops before asking.
pub(super) fn topological<K: Ord + Copy>(
    deps: &[Vec<usize>],
    key: impl Fn(usize) -> K,
) -> Vec<usize> {
    let n = deps.len();
    let mut waiting: Vec<usize> = vec![0; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, list) in deps.iter().enumerate() {
        let mut seen = list.iter().copied().filter(|&d| d < n).collect::<Vec<_>>();
        seen.sort_unstable();
        seen.dedup();
        waiting[node] = seen.len();
        for d in seen {
            dependents[d].push(node);
        }
    }
    let mut ready: BinaryHeap<Reverse<(K, usize)>> = (0..n)
        .filter(|&i| waiting[i] == 0)
        .map(|i| Reverse((key(i), i)))
        .collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse((_, node))) = ready.pop() {
        out.push(node);
        for &next in &dependents[node] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(Reverse((key(next), next)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_smallest_key() {
        // 3 and 1 wait for 2; 0 waits for nothing.
        let deps = vec![vec![], vec![2], vec![], vec![2]];
        assert_eq!(topological(&deps, |i| i), [0, 2, 1, 3]);
        assert_eq!(topological(&deps, Reverse), [2, 3, 1, 0]);
    }

    #[test]
    fn nodes_on_a_loop_are_left_out() {
        let deps = vec![vec![1], vec![0], vec![]];
        assert_eq!(topological(&deps, |i| i), [2]);
    }
}
