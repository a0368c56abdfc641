//! Generated bindings, one module per contract version, and the mapping between them. A leaf:
//! it depends on nothing else in the crate, so the runtime and the capabilities both use it
//! without using each other. The host works in 0.2 types; [`convert`] maps 0.1 onto them.

pub mod convert;
pub mod v0_1;
pub mod v0_2;
