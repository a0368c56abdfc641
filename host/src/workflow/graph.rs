//! Cycle detection over small dependency graphs (steps of a job, jobs of a workflow).

/// Every cycle found by one depth-first search, each as the node list of the loop with the
/// first node repeated at the end (`[a, b, c, a]`). `edges[n]` lists `(target, label)`; the
/// label (e.g. the dependsOn index) of each cycle's first edge is returned with it.
///
/// Iterative, so a long chain in a hostile file cannot overflow the stack.
pub fn find_cycles(edges: &[Vec<(usize, usize)>]) -> Vec<(Vec<usize>, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    let n = edges.len();
    let mut color = vec![Color::White; n];
    let mut cycles = Vec::new();
    // (node, index of the next edge to follow)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..n {
        if color[start] != Color::White {
            continue;
        }
        color[start] = Color::Gray;
        stack.push((start, 0));
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            let Some(&(target, _)) = edges[node].get(next) else {
                color[node] = Color::Black;
                stack.pop();
                continue;
            };
            top.1 += 1;
            if target >= n {
                continue;
            }
            match color[target] {
                Color::White => {
                    color[target] = Color::Gray;
                    stack.push((target, 0));
                }
                Color::Gray => {
                    let pos = stack.iter().position(|&(s, _)| s == target).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[pos..].iter().map(|&(s, _)| s).collect();
                    cycle.push(target);
                    // The first edge of the loop is the one the first node followed.
                    let (first, first_next) = stack[pos];
                    let label = edges[first]
                        .get(first_next.saturating_sub(1))
                        .map(|&(_, l)| l)
                        .unwrap_or(0);
                    cycles.push((cycle, label));
                }
                Color::Black => {}
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(list: &[&[usize]]) -> Vec<Vec<(usize, usize)>> {
        list.iter()
            .map(|targets| targets.iter().enumerate().map(|(i, &t)| (t, i)).collect())
            .collect()
    }

    #[test]
    fn acyclic_graph_has_no_cycles() {
        assert!(find_cycles(&edges(&[&[1, 2], &[2], &[]])).is_empty());
    }

    #[test]
    fn three_node_loop_is_reported_in_order() {
        let found = find_cycles(&edges(&[&[1], &[2], &[0]]));
        assert_eq!(found, vec![(vec![0, 1, 2, 0], 0)]);
    }

    #[test]
    fn self_loop_is_a_cycle() {
        assert_eq!(find_cycles(&edges(&[&[], &[1]])), vec![(vec![1, 1], 0)]);
    }

    #[test]
    fn label_names_the_edge_leaving_the_first_node() {
        // Node 0 depends on 2 (label 0) and 1 (label 1); only 0 → 1 closes a loop.
        let found = find_cycles(&edges(&[&[2, 1], &[0], &[]]));
        assert_eq!(found, vec![(vec![0, 1, 0], 1)]);
    }

    #[test]
    fn long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let mut e: Vec<Vec<(usize, usize)>> = (0..n).map(|i| vec![(i + 1, 0)]).collect();
        e[n - 1] = vec![(0, 0)];
        let found = find_cycles(&e);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.len(), n + 1);
    }
}
