//! GGUF (llama.cpp): magic, version, tensor and key/value counts, the key/value metadata, and
//! the tensor infos (for the parameter count). Large arrays (vocabularies) are counted, not
//! kept; every length is checked against the file before it is trusted.

use std::io::Read;

use serde_json::{Map, Value};

use crate::{Budget, InspectError};

/// Most key/value pairs and tensors accepted.
const MAX_ENTRIES: u64 = 1 << 20;
/// Longest string read.
const MAX_STRING: u64 = 1 << 20;
/// Longest array whose items are kept in the metadata.
const MAX_KEPT_ITEMS: u64 = 16;
/// Most keys kept in the metadata.
const MAX_KEPT_KEYS: usize = 512;

/// What a GGUF header says.
#[derive(Debug, Default)]
pub struct GgufInfo {
    pub version: u32,
    pub tensor_count: u64,
    pub parameter_count: u64,
    /// The key/value metadata (long arrays summarised by their length).
    pub metadata: Map<String, Value>,
    /// Tensor types seen (ggml type names).
    pub tensor_types: Vec<String>,
}

struct Reader<'a, R: Read> {
    input: &'a mut R,
    budget: &'a mut Budget,
}

impl<R: Read> Reader<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], InspectError> {
        let mut b = [0u8; N];
        self.input
            .read_exact(&mut b)
            .map_err(|_| InspectError::Malformed("the GGUF header is cut short".into()))?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, InspectError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64, InspectError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> Result<String, InspectError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(InspectError::Malformed(format!(
                "a GGUF string claims {len} bytes"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| InspectError::Malformed("a GGUF string is cut short".into()))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn value(&mut self, kind: u32) -> Result<Value, InspectError> {
        self.budget.tick()?;
        Ok(match kind {
            0 => Value::from(self.bytes::<1>()?[0]),
            1 => Value::from(self.bytes::<1>()?[0] as i8),
            2 => Value::from(u16::from_le_bytes(self.bytes()?)),
            3 => Value::from(i16::from_le_bytes(self.bytes()?)),
            4 => Value::from(self.u32()?),
            5 => Value::from(i32::from_le_bytes(self.bytes()?)),
            6 => Value::from(f32::from_le_bytes(self.bytes()?)),
            7 => Value::from(self.bytes::<1>()?[0] != 0),
            8 => Value::from(self.string()?),
            9 => {
                let item_kind = self.u32()?;
                let len = self.u64()?;
                if item_kind == 9 {
                    return Err(InspectError::Malformed(
                        "nested GGUF arrays are not supported".into(),
                    ));
                }
                let mut kept = Vec::new();
                for i in 0..len {
                    let item = self.value(item_kind)?;
                    if i < MAX_KEPT_ITEMS {
                        kept.push(item);
                    }
                }
                if len > MAX_KEPT_ITEMS {
                    serde_json::json!({ "length": len, "first": kept })
                } else {
                    Value::Array(kept)
                }
            }
            10 => Value::from(self.u64()?),
            11 => Value::from(i64::from_le_bytes(self.bytes()?)),
            12 => Value::from(f64::from_le_bytes(self.bytes()?)),
            other => {
                return Err(InspectError::Malformed(format!(
                    "unknown GGUF value type {other}"
                )));
            }
        })
    }
}

fn ggml_type(kind: u32) -> String {
    const NAMES: &[&str] = &[
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
        "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES
        .get(kind as usize)
        .map_or_else(|| format!("type{kind}"), |n| (*n).to_owned())
}

/// Reads a GGUF header (the input starts at the magic).
pub fn read<R: Read>(input: &mut R, budget: &mut Budget) -> Result<GgufInfo, InspectError> {
    let mut reader = Reader { input, budget };
    if &reader.bytes::<4>()? != b"GGUF" {
        return Err(InspectError::Malformed("no GGUF magic".into()));
    }
    let version = reader.u32()?;
    if !(1..=3).contains(&version) {
        return Err(InspectError::Malformed(format!(
            "unknown GGUF version {version}"
        )));
    }
    let (tensor_count, kv_count) = if version == 1 {
        (u64::from(reader.u32()?), u64::from(reader.u32()?))
    } else {
        (reader.u64()?, reader.u64()?)
    };
    if tensor_count > MAX_ENTRIES || kv_count > MAX_ENTRIES {
        return Err(InspectError::Malformed(
            "implausible GGUF tensor or key counts".into(),
        ));
    }
    let mut info = GgufInfo {
        version,
        tensor_count,
        ..GgufInfo::default()
    };
    for _ in 0..kv_count {
        let key = reader.string()?;
        let kind = reader.u32()?;
        let value = reader.value(kind)?;
        // Every value is read; the report keeps the first few hundred, their strings charged
        // to the memory budget.
        if info.metadata.len() < MAX_KEPT_KEYS {
            let cost = key.len() as u64 + value.to_string().len() as u64;
            reader.budget.charge(cost)?;
            info.metadata.insert(key, value);
        }
    }
    for _ in 0..tensor_count {
        reader.budget.tick()?;
        let _name = reader.string()?;
        let dims = reader.u32()?;
        if dims > 8 {
            return Err(InspectError::Malformed(format!(
                "a tensor with {dims} dimensions"
            )));
        }
        let mut count = 1u64;
        for _ in 0..dims {
            count = count.saturating_mul(reader.u64()?);
        }
        let kind = ggml_type(reader.u32()?);
        let _offset = reader.u64()?;
        info.parameter_count = info.parameter_count.saturating_add(count);
        if !info.tensor_types.contains(&kind) {
            info.tensor_types.push(kind);
        }
    }
    Ok(info)
}
