//! Fuzz target: see `damon_examples::fuzzing::proc_maps` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| damon_examples::fuzzing::proc_maps(data));
