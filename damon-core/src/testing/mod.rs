//! Test support shared by every crate's tests (cargo feature `testing`;
//! never part of a normal build):
//!
//! * [`conformance`]: one invariant suite for every [`crate::Operations`];
//! * [`alloc`]: the counting global allocator of the no-allocation tests;
//! * [`cost`]: a backend's cost per region-sample (guest tests, benches);
//! * [`skip`]: skip a test by name where the host lacks a kernel feature
//!   (a hard failure inside the guest VM suite).

pub mod alloc;
pub mod conformance;
pub mod cost;
pub mod skip;

pub use skip::{in_vm_suite, require, skip, VM_SUITE_ENV};
