//! safetensors: an 8-byte little-endian header length, then a JSON header naming each
//! tensor's dtype, shape and byte range. Only the header is read; a header that lies about
//! offsets (outside the data, overlapping, or of the wrong size) is malformed.

use std::{collections::BTreeMap, io::Read};

use serde::Deserialize;
use serde_json::Value;

use crate::InspectError;

/// Largest header accepted (the format's own reference implementation uses 100 MB).
pub const MAX_HEADER: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// What a safetensors header says.
#[derive(Debug, Default, PartialEq)]
pub struct SafetensorsInfo {
    pub tensor_count: u64,
    pub parameter_count: u64,
    /// Distinct dtypes, sorted.
    pub dtypes: Vec<String>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// Reads and checks the header of a safetensors file of `size` bytes.
pub fn read<R: Read>(input: &mut R, size: u64) -> Result<SafetensorsInfo, InspectError> {
    let mut len = [0u8; 8];
    input
        .read_exact(&mut len)
        .map_err(|_| InspectError::Malformed("shorter than the 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER || header_len.saturating_add(8) > size {
        return Err(InspectError::Malformed(format!(
            "the header length {header_len} does not fit the file"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    input
        .read_exact(&mut header)
        .map_err(|_| InspectError::Malformed("the header is cut short".into()))?;
    let parsed: BTreeMap<String, Value> = serde_json::from_slice(&header)
        .map_err(|e| InspectError::Malformed(format!("the header is not a JSON object: {e}")))?;
    let data_len = size - 8 - header_len;
    let mut info = SafetensorsInfo::default();
    let mut ranges = Vec::new();
    for (name, value) in parsed {
        if name == "__metadata__" {
            info.metadata = serde_json::from_value(value).map_err(|_| {
                InspectError::Malformed("__metadata__ must map strings to strings".into())
            })?;
            continue;
        }
        let entry: TensorEntry = serde_json::from_value(value)
            .map_err(|e| InspectError::Malformed(format!("tensor `{name}`: {e}")))?;
        let item = dtype_size(&entry.dtype).ok_or_else(|| {
            InspectError::Malformed(format!("tensor `{name}` has unknown dtype {}", entry.dtype))
        })?;
        let count = entry
            .shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| InspectError::Malformed(format!("tensor `{name}`'s shape overflows")))?;
        let [begin, end] = entry.data_offsets;
        if begin > end || end > data_len {
            return Err(InspectError::Malformed(format!(
                "tensor `{name}`'s bytes {begin}..{end} lie outside the data ({data_len} bytes)"
            )));
        }
        if count.checked_mul(item) != Some(end - begin) {
            return Err(InspectError::Malformed(format!(
                "tensor `{name}` needs {count} × {item} bytes but its range holds {}",
                end - begin
            )));
        }
        ranges.push((begin, end, name));
        info.tensor_count += 1;
        info.parameter_count = info.parameter_count.saturating_add(count);
        if !info.dtypes.contains(&entry.dtype) {
            info.dtypes.push(entry.dtype);
        }
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(InspectError::Malformed(format!(
                "tensors `{}` and `{}` overlap",
                pair[0].2, pair[1].2
            )));
        }
    }
    info.dtypes.sort();
    Ok(info)
}
