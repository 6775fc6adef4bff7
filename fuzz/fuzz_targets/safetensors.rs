//! The safetensors header reader on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelhub_inspect::safetensors;

fuzz_target!(|data: &[u8]| {
    let _ = safetensors::read(&mut &data[..], data.len() as u64);
});
