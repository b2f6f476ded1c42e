//! Shared helpers of the example programs.

pub mod cli;
pub mod daemon;
pub mod fuzzing;
pub mod objpool;
