//! Keras models: HDF5 files (`.h5`) are recognised by their signature and searched, without an
//! HDF5 library, for the attributes Keras writes inline (`keras_version`, `backend`, and the
//! `model_config` JSON); `.keras` archives carry `config.json` and `metadata.json`.

use std::io::Read;

use serde_json::{Map, Value};

/// How much of an HDF5 file is searched for Keras attributes.
pub const SCAN_BYTES: u64 = 16 * 1024 * 1024;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first balanced JSON object starting at `at`, parsed.
fn json_object_at(bytes: &[u8], at: usize) -> Option<Value> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes[at..].iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'{' if !in_string => depth += 1,
            b'}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return serde_json::from_slice(&bytes[at..at + i + 1]).ok();
                }
            }
            _ => {}
        }
    }
    None
}

/// The printable token that follows an attribute name within a short window.
fn value_after(bytes: &[u8], name: &[u8], accept: impl Fn(&str) -> bool) -> Option<String> {
    let at = find(bytes, name)? + name.len();
    let window = &bytes[at..bytes.len().min(at + 256)];
    window
        .split(|b| !(b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-' || *b == b'_'))
        .filter_map(|t| std::str::from_utf8(t).ok())
        .find(|t| accept(t))
        .map(str::to_owned)
}

/// The objects of every HDF5 global heap collection (`GCOL`) in `bytes`: where h5py keeps
/// variable-length string attributes.
fn global_heap_strings(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], b"GCOL").map(|i| from + i) {
        from = at + 4;
        let Some(size) = bytes.get(at + 8..at + 16) else {
            break;
        };
        let size = u64::from_le_bytes(size.try_into().unwrap_or([0; 8])) as usize;
        let end = bytes.len().min(at.saturating_add(size));
        let mut pos = at + 16;
        while pos + 16 <= end && found.len() < 4096 {
            let index = u16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
            let len =
                u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap_or([0; 8])) as usize;
            // Lengths come from the file: every sum is checked.
            let Some(data_end) = (pos + 16).checked_add(len).filter(|e| *e <= end) else {
                break;
            };
            if index == 0 {
                break;
            }
            if let Ok(text) = std::str::from_utf8(&bytes[pos + 16..data_end]) {
                found.push(text.to_owned());
            }
            match len
                .div_ceil(8)
                .checked_mul(8)
                .and_then(|padded| (pos + 16).checked_add(padded))
            {
                Some(next) => pos = next,
                None => break,
            }
        }
    }
    found
}

fn is_version(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    (2..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Summarises a Keras model config (`{"class_name": …, "config": {"layers": […]}}`).
pub fn summarise_config(config: &Value, out: &mut Map<String, Value>) {
    if let Some(class) = config.get("class_name").and_then(Value::as_str) {
        out.insert("model_class".into(), class.into());
    }
    let inner = config.get("config");
    if let Some(name) = inner.and_then(|c| c.get("name")).and_then(Value::as_str) {
        out.insert("model_name".into(), name.into());
    }
    if let Some(layers) = inner
        .and_then(|c| c.get("layers"))
        .and_then(Value::as_array)
    {
        out.insert("layer_count".into(), layers.len().into());
        let kinds: Vec<Value> = layers
            .iter()
            .filter_map(|l| l.get("class_name").and_then(Value::as_str))
            .take(64)
            .map(Value::from)
            .collect();
        out.insert("layer_classes".into(), Value::Array(kinds));
    }
}

/// Reads what Keras wrote into an HDF5 file's first [`SCAN_BYTES`].
pub fn read_hdf5<R: Read>(input: &mut R) -> std::io::Result<Map<String, Value>> {
    let mut bytes = Vec::new();
    input.take(SCAN_BYTES).read_to_end(&mut bytes)?;
    let mut out = Map::new();
    out.insert("container".into(), "HDF5".into());
    let is_backend = |t: &str| {
        matches!(
            t,
            "tensorflow" | "jax" | "torch" | "theano" | "cntk" | "numpy"
        )
    };
    let heap = global_heap_strings(&bytes);
    // Fixed-length attributes sit right after their name; variable-length ones in the heap.
    let version = value_after(&bytes, b"keras_version", is_version)
        .or_else(|| heap.iter().find(|s| is_version(s)).cloned());
    if let Some(version) = version {
        out.insert("keras_version".into(), version.into());
    }
    let backend = value_after(&bytes, b"backend", is_backend)
        .or_else(|| heap.iter().find(|s| is_backend(s)).cloned());
    if let Some(backend) = backend {
        out.insert("backend".into(), backend.into());
    }
    if let Some(config) = find(&bytes, b"{\"class_name\"").and_then(|at| json_object_at(&bytes, at))
    {
        summarise_config(&config, &mut out);
    }
    Ok(out)
}
