//! One module per group of bus operations; `crate::State::handle` routes to them.

pub mod clock;
pub mod corrections;
pub mod import;
pub mod leaves;
pub mod reads;
