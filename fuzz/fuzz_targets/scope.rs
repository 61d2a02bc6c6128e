//! Fuzz target: see `harness::scope` (fuzz/harness.rs), which the regression test
//! tests/faults_fuzz_inputs.rs also runs on the committed inputs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::scope(data));
