//! Shared helpers of the example programs.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod cli;
pub mod daemon;
pub mod fuzzing;
pub mod objpool;
