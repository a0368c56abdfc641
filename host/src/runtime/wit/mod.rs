//! Generated bindings, one module per contract version. A leaf: it depends on nothing else in
//! the crate, so the runtime and the capabilities both use it without using each other.

pub mod v0_1;
