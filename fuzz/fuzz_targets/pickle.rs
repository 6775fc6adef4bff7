//! The pickle stream walker on arbitrary bytes: it must return, never panic or run away.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use modelhub_inspect::{Budget, pickle};

fuzz_target!(|data: &[u8]| {
    let mut budget = Budget::new(Duration::from_secs(2));
    let mut summary = pickle::PickleSummary::default();
    let _ = pickle::walk_stream(&mut &data[..], &mut budget, &mut summary);
});
