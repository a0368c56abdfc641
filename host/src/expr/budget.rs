//! The budget of one evaluation: steps, bytes and time.
//!
//! CEL terminates, but a nested comprehension can take minutes and a string that keeps being
//! replaced into itself takes gigabytes. The meters [`super::bounds::instrument`] puts into an
//! expression charge this budget: each comprehension iteration costs the size of its body in
//! steps, each value an expression builds costs its size in bytes, and every charge checks the
//! deadline. Whatever exceeds the budget fails with the expression and its file:line.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cel::common::types::{CelBytes, CelMap, CelOptional, CelString};
use cel::common::value::{CowVal, Val};

use super::bounds::MeterKind;
use super::error::ExprErrorKind;

/// Steps one evaluation may take: a comprehension iteration costs the number of nodes in its
/// body. A million is a `map` over 100,000 items with a 10-node body, well under a second.
pub const MAX_EVAL_STEPS: u64 = 1_000_000;
/// Bytes of values one evaluation may build (strings, lists, maps; copies count again).
pub const MAX_EVAL_BYTES: u64 = 64 * 1024 * 1024;
/// Wall-clock time one evaluation may take (from its first charge); a backstop for costs the
/// steps do not see (each charge checks it, so a runaway loop stops within one iteration of it).
pub const MAX_EVAL_TIME: Duration = Duration::from_secs(10);

/// What one value costs on top of its contents, roughly a boxed value's header.
const VALUE_OVERHEAD: u64 = 16;

/// The steps and bytes one evaluation has used.
#[derive(Debug)]
pub(super) struct Budget {
    steps: AtomicU64,
    bytes: AtomicU64,
    /// When the first charge was made: an expression that charges nothing is cheap, and
    /// reading the clock for each of them would not be.
    started: OnceLock<Instant>,
}

impl Budget {
    /// A full budget; its clock starts at the first charge.
    pub fn new() -> Self {
        Budget {
            steps: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: OnceLock::new(),
        }
    }

    /// Takes `steps` and `bytes` from the budget, or says which limit they exceed.
    pub fn charge(&self, steps: u64, bytes: u64) -> Result<(), ExprErrorKind> {
        let used_steps = add(&self.steps, steps);
        if used_steps > MAX_EVAL_STEPS {
            return Err(ExprErrorKind::Budget(format!(
                "evaluation took more than {MAX_EVAL_STEPS} steps (comprehensions over long \
                 lists, or nested ones, multiply their cost); iterate over less data or split \
                 the work"
            )));
        }
        let used_bytes = add(&self.bytes, bytes);
        if used_bytes > MAX_EVAL_BYTES {
            return Err(ExprErrorKind::Budget(format!(
                "evaluation built more than {} MiB of values; build smaller strings and lists",
                MAX_EVAL_BYTES / (1024 * 1024)
            )));
        }
        if self.started.get_or_init(Instant::now).elapsed() > MAX_EVAL_TIME {
            return Err(ExprErrorKind::Budget(format!(
                "evaluation took longer than {} s; iterate over less data or split the work",
                MAX_EVAL_TIME.as_secs()
            )));
        }
        Ok(())
    }
}

/// Adds `n` to `counter` without wrapping, so a spent budget stays spent; returns the new total.
fn add(counter: &AtomicU64, n: u64) -> u64 {
    let previous = counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_add(n))
        })
        .unwrap_or_else(|v| v);
    previous.saturating_add(n)
}

/// The steps and bytes a meter of `kind` charges for `value`.
pub(super) fn cost_of(kind: MeterKind, cost: i64, value: &CowVal<'_, '_>) -> (u64, u64) {
    let cost = u64::try_from(cost).unwrap_or(1).max(1);
    match kind {
        // The item is copied into the comprehension's result even when it is borrowed.
        MeterKind::Iteration => (cost, size_of(value.as_ref())),
        MeterKind::Built => match value {
            CowVal::Owned(v) => (1, size_of(v.as_ref())),
            CowVal::Borrowed(_) => (1, 0),
        },
        MeterKind::Quadratic => {
            let n = value
                .as_sizer()
                .map(|s| u64::try_from(*s.size().inner()).unwrap_or(0))
                .unwrap_or(0);
            (n.saturating_mul(n).max(1), 0)
        }
    }
}

/// Roughly how many bytes `value` holds, counted without recursing and only up to just past
/// the whole budget (a larger value fails the charge anyway).
pub(super) fn size_of(value: &dyn Val) -> u64 {
    let mut total: u64 = 0;
    let mut stack: Vec<&dyn Val> = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(VALUE_OVERHEAD);
        if total > MAX_EVAL_BYTES {
            break;
        }
        if let Some(s) = v.downcast_ref::<CelString>() {
            total = total.saturating_add(s.inner().len() as u64);
        } else if let Some(b) = v.downcast_ref::<CelBytes>() {
            total = total.saturating_add(b.inner().len() as u64);
        } else if let Some(map) = v.downcast_ref::<CelMap>() {
            for (key, item) in map.inner() {
                total = total.saturating_add(VALUE_OVERHEAD + key_len(key));
                stack.push(item.as_ref());
            }
        } else if let Some(opt) = v.downcast_ref::<CelOptional>() {
            stack.extend(opt.option());
        } else if let Some(iterable) = v.as_iterable() {
            let mut items = iterable.iter();
            while let Some(item) = items.next() {
                stack.push(item);
                if stack.len() as u64 * VALUE_OVERHEAD > MAX_EVAL_BYTES {
                    break;
                }
            }
        }
    }
    total
}

fn key_len(key: &cel::common::types::CelMapKey<'_>) -> u64 {
    match key {
        cel::common::types::CelMapKey::String(s) => s.inner().len() as u64,
        _ => 8,
    }
}

/// `s.replace(old, new[, n])` as the strings extension defines it (all occurrences when `n` is
/// negative), and the size of its result, known before it is built.
pub(super) fn replace_size(s: &str, old: &str, new: &str, n: Option<i64>) -> (u64, usize) {
    let limit = n
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    let count = s.matches(old).take(limit).count();
    let size =
        (s.len() - count * old.len()) as u64 + (count as u64).saturating_mul(new.len() as u64);
    (size, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::common::types::CelList;

    #[test]
    fn sizes_count_contents_and_stop_past_the_budget() {
        let s = CelString::from("x".repeat(100));
        assert_eq!(size_of(&s), 116);
        let list = CelList::from(vec![
            Box::new(CelString::from("ab")) as Box<dyn Val>,
            Box::new(CelString::from("cd")),
        ]);
        assert_eq!(size_of(&list), 16 + 2 * 18);
        let huge = CelString::from("y".repeat(1024));
        let many: Vec<Box<dyn Val>> = (0..100_000).map(|_| huge.clone_as_boxed()).collect();
        let big = CelList::from(many);
        let size = size_of(&big);
        assert!(size > MAX_EVAL_BYTES, "{size}");
        assert!(size < 2 * MAX_EVAL_BYTES, "stops counting early: {size}");
    }

    #[test]
    fn replace_size_is_exact() {
        for (s, old, new, n) in [
            ("aXbXc", "X", "--", None),
            ("abc", "", "-", None),
            ("aaaa", "a", "bb", Some(2)),
            ("aaaa", "a", "", Some(-1)),
            ("", "", "xyz", None),
        ] {
            let (size, limit) = replace_size(s, old, new, n);
            let real = s.replacen(old, new, limit);
            assert_eq!(
                size,
                real.len() as u64,
                "{s:?}.replace({old:?}, {new:?}, {n:?})"
            );
        }
    }

    #[test]
    fn the_budget_names_the_limit_it_exceeds() {
        let budget = Budget::new();
        assert!(budget.charge(MAX_EVAL_STEPS, 0).is_ok());
        let err = budget.charge(1, 0).expect_err("steps");
        assert!(err.to_string().contains("steps"), "{err}");
        let budget = Budget::new();
        let err = budget.charge(1, MAX_EVAL_BYTES + 1).expect_err("bytes");
        assert!(err.to_string().contains("MiB"), "{err}");
    }
}
