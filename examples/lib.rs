//! Shared helpers of the example programs.

pub mod cli;
pub mod fuzzing;
pub mod objpool;
