//! Keras models: HDF5 files (`.h5`) are recognised by their signature and searched, without an
//! HDF5 library, for the attributes Keras writes inline (`keras_version`, `backend`, and the
//! `model_config` JSON, wherever in the file it lies); `.keras` archives carry `config.json`
//! and `metadata.json` (see `archive`). Every config is checked for code: `Lambda` layers
//! carry Python bytecode, and Keras 3 objects name a `module` that deserialisation imports.

use std::io::Read;

use serde_json::{Map, Value};

use crate::{Budget, Finding, InspectError, Report, Rules, Severity, imports};

/// How much of an HDF5 file is searched for the version and backend attributes.
pub const SCAN_BYTES: u64 = 16 * 1024 * 1024;
/// Most bytes of Keras configs read from one file.
const MAX_CONFIG: usize = 32 * 1024 * 1024;
/// Most configs checked in one file.
const MAX_CONFIGS: usize = 16;

/// Layer and object classes that Keras 2 configs (which name no module) rebuild from Keras'
/// own code, without running anything the file carries.
const KERAS2_CLASSES: &[&str] = &[
    // Models.
    "Sequential",
    "Functional",
    "Model",
    // Core, convolution, pooling, recurrent, normalisation, attention, merging, reshaping.
    "InputLayer",
    "Dense",
    "EinsumDense",
    "Activation",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "Masking",
    "Embedding",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "SeparableConv1D",
    "SeparableConv2D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "SimpleRNN",
    "GRU",
    "LSTM",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "SimpleRNNCell",
    "GRUCell",
    "LSTMCell",
    "StackedRNNCells",
    "RNN",
    "Bidirectional",
    "TimeDistributed",
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "UnitNormalization",
    "Normalization",
    "Attention",
    "AdditiveAttention",
    "MultiHeadAttention",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "ThresholdedReLU",
    "Softmax",
    "Rescaling",
    "Resizing",
    "CenterCrop",
    "Identity",
    // Initializers, regularizers, constraints.
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "Zeros",
    "Ones",
    "Constant",
    "RandomUniform",
    "RandomNormal",
    "TruncatedNormal",
    "VarianceScaling",
    "Orthogonal",
    "Identity",
    "L1",
    "L2",
    "L1L2",
    "OrthogonalRegularizer",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "RadialConstraint",
    // Optimizers, losses and metrics of a training config.
    "Adam",
    "AdamW",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Ftrl",
    "Custom>Adam",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "CosineDecay",
    "InverseTimeDecay",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "Hinge",
    "Huber",
    "MeanMetricWrapper",
    "Mean",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "AUC",
    "Precision",
    "Recall",
];

/// Keras modules whose functions a config may name (`{"class_name": "function", …}`):
/// activations, losses, metrics. Any other function is looked up by name in code the file
/// does not show (Keras' own file downloaders and loaders among them).
const KERAS_FUNCTION_MODULES: &[&str] = &[
    "keras.activations",
    "keras.src.activations",
    "keras.src.activations.activations",
    "keras.losses",
    "keras.src.losses",
    "keras.src.losses.losses",
    "keras.metrics",
    "keras.src.metrics",
];

/// Layer classes that carry code, or load a model (and its code) from a path or URL.
const CODE_LAYERS: &[&str] = &["Lambda", "__lambda__", "TFSMLayer", "TorchModuleWrapper"];
/// Layers that read a file named in their config (a vocabulary path).
const FILE_LAYERS: &[&str] = &[
    "StringLookup",
    "IntegerLookup",
    "IndexLookup",
    "TextVectorization",
];
/// Layers that call a named function of the TensorFlow API.
const API_LAYERS: &[&str] = &["TFOpLambda", "SlicingOpLambda"];

fn finding(module: &str, name: &str, severity: Severity, reason: &str) -> Finding {
    Finding {
        module: module.to_owned(),
        name: name.chars().take(256).collect(),
        severity,
        reason: reason.to_owned(),
    }
}

/// Checks every object of a Keras model config for code and foreign references.
pub fn check_config(config: &Value, rules: &Rules, report: &mut Report) {
    // Depth is bounded by the JSON parser (128 levels); the walk is a loop all the same.
    let mut pending = vec![config];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(object) => {
                if let Some(found) = check_object(object, rules) {
                    report.absorb_finding(found);
                }
                pending.extend(object.values());
            }
            _ => {}
        }
    }
}

fn check_object(object: &Map<String, Value>, rules: &Rules) -> Option<Finding> {
    let class = object.get("class_name").and_then(Value::as_str)?;
    let module = object.get("module").and_then(Value::as_str);
    if CODE_LAYERS.contains(&class) {
        return Some(finding(
            module.unwrap_or("keras.layers"),
            class,
            Severity::Dangerous,
            "a Lambda layer holds Python code that runs when the model is loaded (a TFSMLayer loads a whole saved model)",
        ));
    }
    if FILE_LAYERS.contains(&class)
        && object
            .get("config")
            .and_then(|c| c.get("vocabulary"))
            .is_some_and(Value::is_string)
    {
        return Some(finding(
            module.unwrap_or("keras.layers"),
            class,
            Severity::Unknown,
            "reads its vocabulary from a file the config names",
        ));
    }
    if API_LAYERS.contains(&class) {
        return Some(finding(
            module.unwrap_or("keras.layers"),
            class,
            Severity::Unknown,
            "calls a TensorFlow function named in the file",
        ));
    }
    match module {
        // Keras 3: the module is imported and the class (or function) fetched from it.
        Some(module) => {
            let name = if class == "function" {
                object
                    .get("config")
                    .and_then(Value::as_str)
                    .unwrap_or(class)
            } else {
                class
            };
            if imports::is_keras_builtin(module)
                && class == "function"
                && !KERAS_FUNCTION_MODULES.contains(&module)
            {
                return Some(finding(
                    module,
                    name,
                    Severity::Unknown,
                    "a Keras function outside its activations, losses and metrics",
                ));
            }
            if imports::is_keras_builtin(module) {
                let registered = object.get("registered_name").and_then(Value::as_str);
                return registered.filter(|r| r.contains('>')).map(|r| {
                    finding(
                        module,
                        r,
                        Severity::Unknown,
                        "a custom object registered with Keras",
                    )
                });
            }
            // A custom object is looked up in the registry the loading code filled; anything
            // else makes Keras import the named module.
            let custom = object
                .get("registered_name")
                .and_then(Value::as_str)
                .is_some_and(|r| r.contains('>'));
            let verdict = rules.classify(module, name);
            Some(if verdict.severity == Severity::Dangerous || !custom {
                finding(
                    module,
                    name,
                    Severity::Dangerous,
                    "the config makes Keras import code from outside Keras",
                )
            } else {
                finding(
                    module,
                    name,
                    Severity::Unknown,
                    "a custom object registered by the loading code",
                )
            })
        }
        // Keras 2: classes are looked up among Keras' own and the loader's custom objects.
        None if object.contains_key("config") && !KERAS2_CLASSES.contains(&class) => Some(finding(
            "keras",
            class,
            Severity::Unknown,
            "a class that is not one of Keras' own (a custom object)",
        )),
        None => None,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
        while pos + 16 <= end && found.len() < 256 {
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
            // Only short strings (versions, backend names) are wanted.
            if len <= 64
                && let Ok(text) = std::str::from_utf8(&bytes[pos + 16..data_end])
            {
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

/// Finds, in a stream fed chunk by chunk, every JSON object whose first key is `"class_name"`
/// (whitespace allowed after the brace), outside of an object already being captured; and
/// counts the `"class_name"` keys that are in no such object (which no parse here covers).
#[derive(Default)]
struct ConfigScanner {
    /// The last bytes of the previous chunk, for a key split between chunks.
    carry: Vec<u8>,
    /// The object being captured, with the state of its brace matching.
    capture: Option<Capture>,
    found: Vec<Vec<u8>>,
    /// `"class_name"` keys that do not start an object.
    orphans: usize,
    /// How many times the `model_config` attribute name appears.
    attribute_names: usize,
    /// Bytes captured so far, for the memory bound.
    captured: usize,
    /// `\u00XX` escapes of printable ASCII, which JSON writers never need: a way to spell a
    /// key (`"class\u005fname"`) that the byte search would miss.
    ascii_escapes: usize,
}

struct Capture {
    bytes: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Capture {
    fn new() -> Self {
        Self {
            bytes: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    /// Takes bytes until the object closes; returns how many were taken if it did.
    fn take(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            self.bytes.push(b);
            match b {
                _ if self.escaped => self.escaped = false,
                b'\\' if self.in_string => self.escaped = true,
                b'"' => self.in_string = !self.in_string,
                b'{' if !self.in_string => self.depth += 1,
                b'}' if !self.in_string => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Whether `w` is `\u00XX` for a printable ASCII character.
fn is_ascii_escape(w: &[u8]) -> bool {
    let hex = |b: u8| char::from(b).to_digit(16);
    match w {
        [b'\\', b'u', b'0', b'0', h, l] => match (hex(*h), hex(*l)) {
            (Some(h), Some(l)) => (0x20..0x7f).contains(&(h * 16 + l)),
            _ => false,
        },
        _ => false,
    }
}

/// The key that starts a Keras object.
const KEY: &[u8] = b"\"class_name\"";
/// The attribute Keras keeps its model config in.
const ATTRIBUTE: &[u8] = b"model_config";
/// How much whitespace may sit between an object's brace and its first key.
const MAX_GAP: usize = 64;

impl ConfigScanner {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), InspectError> {
        let mut window = std::mem::take(&mut self.carry);
        let carried = window.len();
        window.extend_from_slice(chunk);
        // Names wholly inside the carried bytes were counted with the previous chunk.
        self.attribute_names += window
            .windows(ATTRIBUTE.len())
            .enumerate()
            .filter(|(i, w)| i + ATTRIBUTE.len() > carried && *w == ATTRIBUTE)
            .count();
        self.ascii_escapes += window
            .windows(6)
            .enumerate()
            .filter(|(i, w)| i + 6 > carried && is_ascii_escape(w))
            .count();
        // Where the search for keys starts: past what the carried bytes already showed; and
        // the first byte an object may start at (the carried bytes are not in any object).
        let mut at = carried.saturating_sub(KEY.len() - 1);
        let mut floor = 0;
        loop {
            if let Some(capture) = &mut self.capture {
                let Some(used) = capture.take(&window[at..]) else {
                    self.captured += window.len() - at;
                    if self.captured > MAX_CONFIG {
                        return Err(InspectError::TooComplex(format!(
                            "Keras configs over {MAX_CONFIG} bytes"
                        )));
                    }
                    return Ok(());
                };
                self.captured += used;
                at += used;
                floor = at;
                if let Some(done) = self.capture.take() {
                    self.found.push(done.bytes);
                }
                if self.found.len() > MAX_CONFIGS {
                    return Err(InspectError::TooComplex(format!(
                        "more than {MAX_CONFIGS} Keras configs"
                    )));
                }
            }
            let Some(i) = find(&window[at..], KEY) else {
                let keep = KEY.len().max(ATTRIBUTE.len()) + MAX_GAP;
                let from = window.len().saturating_sub(keep).max(at);
                self.carry = window[from..].to_vec();
                return Ok(());
            };
            let key = at + i;
            let gap = window[..key]
                .iter()
                .rev()
                .take(MAX_GAP + 1)
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            match key.checked_sub(gap + 1) {
                Some(brace) if brace >= floor && window[brace] == b'{' => {
                    self.capture = Some(Capture::new());
                    at = brace;
                }
                _ => {
                    self.orphans += 1;
                    at = key + KEY.len();
                }
            }
        }
    }
}

/// Reads an HDF5 file: the Keras attributes from its first [`SCAN_BYTES`], and every Keras
/// config anywhere in it, each checked for code. A `model_config` attribute that cannot be
/// read is an error (the loader would read it); a file without one holds weights only.
pub fn inspect_hdf5<R: Read>(
    input: &mut R,
    budget: &mut Budget,
    rules: &Rules,
    report: &mut Report,
) -> Result<(), InspectError> {
    let mut head = Vec::new();
    (&mut *input).take(SCAN_BYTES).read_to_end(&mut head)?;
    report.meta("container", "HDF5");
    let is_backend = |t: &str| {
        matches!(
            t,
            "tensorflow" | "jax" | "torch" | "theano" | "cntk" | "numpy"
        )
    };
    let heap = global_heap_strings(&head);
    // Fixed-length attributes sit right after their name; variable-length ones in the heap.
    let version = value_after(&head, b"keras_version", is_version)
        .or_else(|| heap.iter().find(|s| is_version(s)).cloned());
    if let Some(version) = version {
        report.meta("keras_version", version);
    }
    let backend = value_after(&head, b"backend", is_backend)
        .or_else(|| heap.iter().find(|s| is_backend(s)).cloned());
    if let Some(backend) = backend {
        report.meta("backend", backend);
    }
    let mut scanner = ConfigScanner::default();
    scanner.feed(&head)?;
    let mut chunk = vec![0u8; 4 << 20];
    loop {
        budget.check()?;
        let n = input.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        scanner.feed(&chunk[..n])?;
    }
    if scanner.capture.is_some() || scanner.orphans > 0 || scanner.ascii_escapes > 0 {
        return Err(InspectError::Malformed(
            "the file holds a Keras config that could not be read".into(),
        ));
    }
    let mut configs = 0;
    for bytes in &scanner.found {
        let config = serde_json::from_slice::<Value>(bytes).map_err(|e| {
            InspectError::Malformed(format!("a Keras config that is not JSON: {e}"))
        })?;
        if configs == 0 {
            let mut summary = Map::new();
            summarise_config(&config, &mut summary);
            for (k, v) in summary {
                report.meta(&k, v);
            }
        }
        check_config(&config, rules, report);
        configs += 1;
    }
    if scanner.attribute_names > 0 && configs == 0 {
        return Err(InspectError::Malformed(
            "the file has a model_config attribute that could not be read".into(),
        ));
    }
    report.clear(if configs > 0 {
        "HDF5: tensors and a Keras config of Keras' own layers"
    } else {
        "HDF5 without a Keras model config: tensors and attributes only"
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdicts(config: Value) -> Vec<(String, Severity)> {
        let mut report = Report::default();
        check_config(&config, &Rules::default(), &mut report);
        report
            .findings
            .into_iter()
            .map(|f| (format!("{}.{}", f.module, f.name), f.severity))
            .collect()
    }

    #[test]
    fn configs_are_checked_for_code_and_foreign_references() {
        let layer = |module: &str, class: &str, config: Value| json!({ "module": module, "class_name": class, "config": config, "registered_name": null });
        let clean = json!({ "module": "keras", "class_name": "Functional", "config": { "layers": [
            layer("keras.layers", "Dense", json!({ "activation": layer("keras.activations", "function", json!("relu")) })),
        ] } });
        assert!(verdicts(clean).is_empty());
        let nested_lambda = json!({ "class_name": "Sequential", "config": { "layers": [
            { "class_name": "TimeDistributed", "config": { "layer": { "class_name": "Lambda", "config": {} } } },
        ] } });
        assert_eq!(verdicts(nested_lambda)[0].1, Severity::Dangerous);
        let exec = layer("builtins", "function", json!("exec"));
        assert_eq!(
            verdicts(exec),
            [("builtins.exec".to_owned(), Severity::Dangerous)]
        );
        let get_file = layer("keras.utils", "function", json!("get_file"));
        assert_eq!(verdicts(get_file)[0].1, Severity::Dangerous);
        let other = layer(
            "keras.src.saving.saving_lib",
            "function",
            json!("load_model"),
        );
        assert_eq!(verdicts(other)[0].1, Severity::Unknown);
        let foreign = layer("my_layers", "Fancy", json!({}));
        assert_eq!(verdicts(foreign)[0].1, Severity::Dangerous);
        let mut custom = layer("my_layers", "Fancy", json!({}));
        custom["registered_name"] = json!("Mine>Fancy");
        assert_eq!(verdicts(custom)[0].1, Severity::Unknown);
        let keras2_custom = json!({ "class_name": "MyLayer", "config": {} });
        assert_eq!(verdicts(keras2_custom)[0].1, Severity::Unknown);
    }

    fn scan(chunks: &[&[u8]]) -> ConfigScanner {
        let mut scanner = ConfigScanner::default();
        for chunk in chunks {
            scanner.feed(chunk).unwrap();
        }
        scanner
    }

    #[test]
    fn configs_are_found_across_chunk_boundaries() {
        let config = br#"{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"name": "}"}}]}}"#;
        let mut file = b"\x00junk model_config\x00".to_vec();
        file.extend_from_slice(config);
        file.extend_from_slice(b"\x00tail {  \n \"class_name\": \"Lambda\"}");
        file.extend_from_slice(br#" {"config": {}, "class_name": "Hidden"}"#);
        for split in 0..file.len() {
            let scanner = scan(&[&file[..split], &file[split..]]);
            assert_eq!(scanner.found.len(), 2, "split at {split}");
            assert_eq!(scanner.found[0], config.to_vec(), "split at {split}");
            assert_eq!(scanner.attribute_names, 1, "split at {split}");
            assert_eq!(
                scanner.orphans, 1,
                "split at {split}: a key not first is not read"
            );
        }
    }
}
