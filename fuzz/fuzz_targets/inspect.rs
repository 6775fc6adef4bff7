//! The whole dispatcher (zip archives, HDF5, ONNX included) on arbitrary bytes.
#![no_main]

use std::{io::Cursor, time::Duration};

use libfuzzer_sys::fuzz_target;
use modelhub_inspect::{Declared, Limits, inspect};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { time: Duration::from_secs(2) };
    for declared in [Declared::Pickled, Declared::Joblib, Declared::Onnx, Declared::Other] {
        let _ = inspect(&mut Cursor::new(data), data.len() as u64, declared, limits);
    }
});
