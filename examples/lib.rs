//! Shared helpers of the example programs.

pub mod objpool;
pub mod fuzzing;
