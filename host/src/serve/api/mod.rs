//! The routes under `/api/v1`, one file per group.

pub mod catalog;
pub mod data;
pub mod eval;
pub mod runs;
