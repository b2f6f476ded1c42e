//! Shared helpers of the example programs.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod cli;
pub mod daemon;
pub mod engine;
pub mod fuzzing;
pub mod objpool;

/// README.md's code, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
