//! The GGUF header reader on arbitrary bytes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use modelhub_inspect::{Budget, gguf};

fuzz_target!(|data: &[u8]| {
    let mut budget = Budget::new(Duration::from_secs(2));
    let _ = gguf::read(&mut &data[..], &mut budget);
});
