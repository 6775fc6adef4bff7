//! numpy `.npy` files (alone, or as the entries of an `.npz` archive): a magic string, a
//! version, a header that is a Python dict literal (`descr`, `fortran_order`, `shape`), then
//! the data. Arrays of plain numbers are inert; an array with object fields stores a pickle
//! after the header (`np.load(allow_pickle=True)` unpickles it), which is walked.

use std::io::BufRead;

use crate::{Context, InspectError, PICKLE_CLEARANCE, Report, pickle, read_pickles};

/// The signature of a `.npy` file.
pub const MAGIC: &[u8] = b"\x93NUMPY";
/// Longest header read (numpy itself refuses headers over 10,000 bytes by default).
const MAX_HEADER: usize = 1 << 20;

/// Whether a header's dtype has object fields: any quoted type code of kind `O` (`'|O'`,
/// `'O8'`, or a field of a structured dtype).
fn has_objects(header: &str) -> bool {
    let mut quoted = header.split(['\'', '"']).skip(1).step_by(2);
    quoted.any(|token| {
        token
            .trim_start_matches(['<', '>', '|', '='])
            .starts_with('O')
    })
}

/// Reads one `.npy` stream into `report`.
pub fn inspect<R: BufRead>(
    input: &mut R,
    cx: &mut Context<'_>,
    report: &mut Report,
) -> Result<(), InspectError> {
    let mut preamble = [0u8; 8];
    input
        .read_exact(&mut preamble)
        .map_err(|_| InspectError::Malformed("the .npy preamble is cut short".into()))?;
    if &preamble[..6] != MAGIC {
        return Err(InspectError::Malformed("no .npy signature".into()));
    }
    let header_len = match preamble[6] {
        1 => {
            let mut len = [0u8; 2];
            input.read_exact(&mut len)?;
            usize::from(u16::from_le_bytes(len))
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            u32::from_le_bytes(len) as usize
        }
        other => {
            return Err(InspectError::Malformed(format!(
                "unknown .npy version {other}"
            )));
        }
    };
    if header_len > MAX_HEADER {
        return Err(InspectError::TooComplex(format!(
            "a .npy header of {header_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len];
    input
        .read_exact(&mut header)
        .map_err(|_| InspectError::Malformed("the .npy header is cut short".into()))?;
    let header = String::from_utf8_lossy(&header);
    report.meta("npy_header", header.trim());
    if !has_objects(&header) {
        report.clear("a numpy array of plain values, nothing executable");
        return Ok(());
    }
    report.meta("npy_objects", true);
    match read_pickles(input, cx, report)? {
        pickle::Stream::Pickles => {
            report.clear(PICKLE_CLEARANCE);
            Ok(())
        }
        pickle::Stream::NotPickle { .. } => Err(InspectError::Malformed(
            "an object array whose data is not a pickle".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::has_objects;

    #[test]
    fn object_fields_are_recognised() {
        assert!(has_objects(
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"
        ));
        assert!(has_objects(
            "{'descr': [('a', '<f8'), ('b', 'O')], 'shape': (2,), }"
        ));
        assert!(!has_objects(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }"
        ));
        assert!(!has_objects(
            "{'descr': '<U10', 'fortran_order': False, 'shape': (), }"
        ));
    }
}
