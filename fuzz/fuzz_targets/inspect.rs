//! The whole dispatcher (zip archives, HDF5, ONNX, compressed streams included) on arbitrary
//! bytes.
#![no_main]

use std::{io::Cursor, time::Duration};

use libfuzzer_sys::fuzz_target;
use modelhub_inspect::{Declared, Limits, Rules, inspect};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { time: Duration::from_secs(2), ..Limits::default() };
    let rules = Rules::default();
    for declared in [Declared::Onnx, Declared::Other] {
        let _ = inspect(&mut Cursor::new(data), data.len() as u64, declared, limits, &rules);
    }
});
