//! One memory budget per call: every linear memory and every table of the store counts
//! against it together, so a component with several memories, or a guest that grows a table,
//! cannot hold more host memory than `limits.memory-mb`.

use wasmtime::ResourceLimiter;

/// Host bytes counted for one table element (wasmtime stores a pointer, and some element kinds
/// a pointer pair; count the larger).
const TABLE_ELEMENT_BYTES: usize = 2 * std::mem::size_of::<usize>();

/// Instances a plugin's component may create (a std Rust component needs a handful).
pub(super) const MAX_INSTANCES: usize = 64;
/// Tables a plugin's component may create.
pub(super) const MAX_TABLES: usize = 64;
/// Linear memories a plugin's component may create.
pub(super) const MAX_MEMORIES: usize = 16;

/// The error a refused growth traps with; the runtime turns it into a memory-limit error.
#[derive(Debug, thiserror::Error)]
#[error("the call's memory budget of {budget} bytes is spent ({what} wanted {wanted} more bytes)")]
pub struct BudgetExceeded {
    /// The budget.
    pub budget: usize,
    /// `a linear memory` or `a table`.
    pub what: &'static str,
    /// The growth that was refused.
    pub wanted: usize,
}

/// A [`ResourceLimiter`] that sums all memories and tables of a store against one budget.
pub struct CallBudget {
    budget: usize,
    used: usize,
    /// The last growth granted, taken back if wasmtime then fails to grow.
    last_grant: usize,
}

impl CallBudget {
    /// A budget of `bytes` for the whole call.
    pub fn new(bytes: usize) -> Self {
        CallBudget {
            budget: bytes,
            used: 0,
            last_grant: 0,
        }
    }

    /// Bytes counted so far.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }

    fn grow(&mut self, what: &'static str, extra: usize) -> wasmtime::Result<bool> {
        match self.used.checked_add(extra) {
            Some(total) if total <= self.budget => {
                self.used = total;
                self.last_grant = extra;
                Ok(true)
            }
            // An error (not `false`) traps: a guest must not be able to probe the budget and
            // keep running, and the trap names the limit.
            _ => Err(BudgetExceeded {
                budget: self.budget,
                what,
                wanted: extra,
            }
            .into()),
        }
    }

    fn take_back(&mut self) {
        self.used = self.used.saturating_sub(self.last_grant);
        self.last_grant = 0;
    }
}

impl ResourceLimiter for CallBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow("a linear memory", desired.saturating_sub(current))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.take_back();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let elements = desired.saturating_sub(current);
        self.grow("a table", elements.saturating_mul(TABLE_ELEMENT_BYTES))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.take_back();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut b = CallBudget::new(10 * 65536);
        assert!(b.memory_growing(0, 6 * 65536, None).unwrap());
        // A second memory of the same size would fit a per-memory limit, not the sum.
        assert!(b.memory_growing(0, 6 * 65536, None).is_err());
        assert!(b.table_growing(0, 1000, None).unwrap());
        assert_eq!(b.used(), 6 * 65536 + 1000 * TABLE_ELEMENT_BYTES);
        let err = b.table_growing(1000, 10_000_000, None).unwrap_err();
        assert!(err.downcast_ref::<BudgetExceeded>().is_some());
    }

    #[test]
    fn a_failed_growth_is_taken_back() {
        let mut b = CallBudget::new(10 * 65536);
        assert!(b.memory_growing(0, 4 * 65536, None).unwrap());
        b.memory_grow_failed(wasmtime::Error::msg("os refused"))
            .unwrap();
        assert_eq!(b.used(), 0);
    }
}
