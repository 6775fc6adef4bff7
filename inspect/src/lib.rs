//! Static inspection of machine-learning model files. Nothing here loads or runs a model:
//! each format's reader walks the bytes (pickle opcodes, zip entries, headers, protobuf
//! fields) within a time and memory budget, and reports what it found. Malformed input is a
//! finding, never a panic. The crate knows nothing of the server; `cargo fuzz` drives its
//! readers directly (see `fuzz/`).

mod archive;
pub mod gguf;
mod imports;
pub mod keras;
pub mod magic;
pub mod onnx;
pub mod pickle;
pub mod safetensors;

use std::{
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The verdict on a whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing dangerous, nothing unknown.
    Safe,
    /// Something runs code when the file is loaded.
    Unsafe,
    /// Imports outside the allowlist, or a format no reader understands.
    Unknown,
    /// The file could not be read completely.
    Error,
}

impl Status {
    /// The verdict as a lower-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safe => "safe",
            Self::Unsafe => "unsafe",
            Self::Unknown => "unknown",
            Self::Error => "error",
        }
    }
}

/// What the uploader says the file is; it matters only where the content is ambiguous
/// (protocol 0 pickles, ONNX protobufs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// A pickle or a PyTorch checkpoint.
    Pickled,
    /// A joblib dump (numpy array bytes follow their wrappers inline).
    Joblib,
    /// An ONNX protobuf.
    Onnx,
    /// Anything else.
    Other,
}

/// How bad an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// On the allowlist.
    Safe,
    /// Not on the allowlist, not known to be dangerous.
    Unknown,
    /// Runs code, reaches the system, or cannot be checked.
    Dangerous,
}

/// One thing a model file imports, and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The Python module (`<dynamic>` for a computed one).
    pub module: String,
    /// The name imported from it.
    pub name: String,
    pub severity: Severity,
    /// Why, in plain words.
    pub reason: String,
}

/// Why a reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The bytes are not what the format says.
    #[error("malformed file: {0}")]
    Malformed(String),
    /// Past the time or size budget.
    #[error("too complex to inspect: {0}")]
    TooComplex(String),
    /// Reading failed.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// A time budget shared by a file's readers.
pub struct Budget {
    deadline: Instant,
    ticks: u64,
}

impl Budget {
    /// A budget ending `limit` from now.
    pub fn new(limit: Duration) -> Self {
        Self {
            deadline: Instant::now() + limit,
            ticks: 0,
        }
    }

    /// Counts a step; fails once the deadline has passed (checked every 4096 steps).
    pub fn tick(&mut self) -> Result<(), InspectError> {
        self.ticks += 1;
        if self.ticks.is_multiple_of(4096) && Instant::now() > self.deadline {
            return Err(InspectError::TooComplex(
                "the inspection ran out of time".into(),
            ));
        }
        Ok(())
    }
}

/// Everything an inspection found: stored with the version as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Which reader ran (`pickle`, `pytorch-zip`, `safetensors`, …).
    pub inspector: String,
    /// Imports found in pickles, with their severity.
    pub findings: Vec<Finding>,
    /// Why the file could not be read completely, if it could not.
    pub error: Option<String>,
    pub parameter_count: Option<u64>,
    pub tensor_count: Option<u64>,
    pub dtypes: Vec<String>,
    /// The rebuilt object's class, e.g. a scikit-learn estimator.
    pub estimator_class: Option<String>,
    pub sklearn_version: Option<String>,
    pub inputs: Vec<onnx::TensorSpec>,
    pub outputs: Vec<onnx::TensorSpec>,
    /// Frameworks the file points to (`scikit-learn`, `pytorch`, `keras`, `llama.cpp`, …).
    pub framework_hints: Vec<String>,
    /// Raw metadata the format carries.
    pub metadata: Value,
}

impl Report {
    fn new(inspector: &str) -> Self {
        Self {
            inspector: inspector.to_owned(),
            metadata: Value::Object(Map::new()),
            ..Self::default()
        }
    }

    fn hint(&mut self, framework: &str) {
        if !self.framework_hints.iter().any(|h| h == framework) {
            self.framework_hints.push(framework.to_owned());
        }
    }

    fn meta(&mut self, key: &str, value: impl Into<Value>) {
        if let Value::Object(map) = &mut self.metadata {
            map.insert(key.to_owned(), value.into());
        }
    }

    /// DANGEROUS findings make a file UNSAFE; otherwise a read error makes it ERROR; unknown
    /// imports make it UNKNOWN; the rest is SAFE.
    pub fn status(&self) -> Status {
        if self
            .findings
            .iter()
            .any(|f| f.severity == Severity::Dangerous)
        {
            Status::Unsafe
        } else if self.error.is_some() {
            Status::Error
        } else if self.inspector == "none"
            || self
                .findings
                .iter()
                .any(|f| f.severity == Severity::Unknown)
        {
            Status::Unknown
        } else {
            Status::Safe
        }
    }

    /// The DANGEROUS findings, as `module.name` strings.
    pub fn dangerous(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Dangerous)
            .map(|f| format!("{}.{}", f.module, f.name))
            .collect()
    }

    fn absorb_pickle(&mut self, summary: pickle::PickleSummary) {
        for finding in summary.findings {
            if !self.findings.contains(&finding) {
                self.findings.push(finding);
            }
        }
        if self.estimator_class.is_none() {
            self.estimator_class = summary.root_class;
        }
        if self.sklearn_version.is_none() {
            self.sklearn_version = summary.sklearn_version;
        }
        if self
            .estimator_class
            .as_deref()
            .is_some_and(|c| c.starts_with("sklearn."))
            || self.sklearn_version.is_some()
        {
            self.hint("scikit-learn");
        }
        if self.findings.iter().any(|f| f.module.starts_with("torch")) {
            self.hint("pytorch");
        }
    }
}

/// Limits of one inspection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time for the whole file.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(60),
        }
    }
}

/// Fills `buf` as far as the input allows.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

const ZLIB: &[&[u8]] = &[b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"];

/// Walks consecutive pickles (legacy PyTorch files hold several) until the data stops
/// looking like one.
fn walk_pickles<R: BufRead>(
    input: &mut R,
    budget: &mut Budget,
    report: &mut Report,
    joblib: bool,
) -> Result<(), InspectError> {
    let mut summary = pickle::PickleSummary::default();
    let outcome = (|| {
        for round in 0.. {
            pickle::walk(input, budget, &mut summary, joblib)?;
            let next = input.fill_buf()?;
            // Legacy PyTorch files hold five pickles (the main one possibly in protocol 0 or
            // 1) before the raw storages; later ones start with PROTO.
            let more = next.first() == Some(&0x80) || (round < 4 && magic::is_pickle(next));
            if round >= 16 || !more {
                return Ok(());
            }
        }
        Ok(())
    })();
    report.meta("pickle_opcodes", summary.opcodes);
    if summary.arrays > 0 {
        report.meta("inline_arrays", summary.arrays);
    }
    if summary.persistent_ids > 0 {
        report.meta("persistent_ids", summary.persistent_ids);
    }
    report.absorb_pickle(summary);
    outcome
}

fn inspect_pickle<R: Read + Seek>(
    file: &mut R,
    budget: &mut Budget,
    report: &mut Report,
    joblib: bool,
) -> Result<(), InspectError> {
    let mut head = [0u8; 2];
    let n = file.read(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    let head = &head[..n];
    if ZLIB.iter().any(|m| head.starts_with(m)) {
        report.meta("compression", "zlib");
        walk_pickles(
            &mut BufReader::new(flate2::read::ZlibDecoder::new(file)),
            budget,
            report,
            joblib,
        )
    } else if head.starts_with(b"\x1f\x8b") {
        report.meta("compression", "gzip");
        walk_pickles(
            &mut BufReader::new(flate2::read::GzDecoder::new(file)),
            budget,
            report,
            joblib,
        )
    } else {
        walk_pickles(
            &mut BufReader::with_capacity(1 << 20, file),
            budget,
            report,
            joblib,
        )
    }
}

/// Inspects a model file of `size` bytes, recognised by its content (the declared format
/// decides only where the content is ambiguous).
pub fn inspect<R: Read + Seek>(
    file: &mut R,
    size: u64,
    declared: Declared,
    limits: Limits,
) -> Report {
    let mut head = vec![0u8; 64 * 1024];
    let read = (|| {
        let n = read_up_to(file, &mut head)?;
        head.truncate(n);
        file.seek(SeekFrom::Start(0))
    })();
    if let Err(e) = read {
        let mut report = Report::new("none");
        report.error = Some(format!("read error: {e}"));
        return report;
    }
    let mut budget = Budget::new(limits.time);
    let picklish = head.first() == Some(&0x80)
        || (matches!(declared, Declared::Pickled | Declared::Joblib)
            && (magic::is_pickle(&head)
                || ZLIB.iter().any(|m| head.starts_with(m))
                || head.starts_with(b"\x1f\x8b")));
    let (mut report, outcome) = if head.starts_with(b"GGUF") {
        let mut report = Report::new("gguf");
        report.hint("llama.cpp");
        let outcome = gguf::read(&mut BufReader::new(&mut *file), &mut budget).map(|info| {
            report.tensor_count = Some(info.tensor_count);
            report.parameter_count = Some(info.parameter_count);
            report.dtypes = info.tensor_types;
            let get = |key: &str| info.metadata.get(key).cloned();
            let arch = get("general.architecture").and_then(|v| v.as_str().map(str::to_owned));
            report.meta("gguf_version", info.version);
            if let Some(arch) = &arch {
                report.meta("architecture", arch.as_str());
                if let Some(ctx) = get(&format!("{arch}.context_length")) {
                    report.meta("context_length", ctx);
                }
            }
            if let Some(file_type) = get("general.file_type") {
                report.meta("file_type", file_type);
            }
            report.meta("kv", Value::Object(info.metadata));
        });
        (report, outcome)
    } else if magic::is_hdf5(&head) {
        let mut report = Report::new("hdf5");
        report.hint("keras");
        let outcome = keras::read_hdf5(file)
            .map_err(InspectError::Io)
            .map(|found| {
                for (k, v) in found {
                    report.meta(&k, v);
                }
            });
        (report, outcome)
    } else if head.starts_with(b"PK\x03\x04") {
        let mut report = Report::new("zip");
        let outcome = archive::inspect(file, &mut budget, &mut report);
        (report, outcome)
    } else if magic::is_safetensors(&head, size) {
        let mut report = Report::new("safetensors");
        let outcome = safetensors::read(&mut BufReader::new(file), size).map(|info| {
            report.tensor_count = Some(info.tensor_count);
            report.parameter_count = Some(info.parameter_count);
            report.dtypes = info.dtypes;
            report.meta("metadata", json!(info.metadata));
        });
        (report, outcome)
    } else if picklish {
        let mut report = Report::new("pickle");
        let outcome = inspect_pickle(file, &mut budget, &mut report, declared == Declared::Joblib);
        (report, outcome)
    } else if declared == Declared::Onnx {
        let mut report = Report::new("onnx");
        report.hint("onnx");
        let outcome = if size > onnx::MAX_BYTES {
            Err(InspectError::TooComplex(format!(
                "ONNX files over {} bytes are not decoded",
                onnx::MAX_BYTES
            )))
        } else {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)
                .map_err(InspectError::Io)
                .and_then(|_| onnx::read(&bytes))
                .map(|info| {
                    report.parameter_count = Some(info.parameter_count);
                    report.tensor_count = Some(info.initializer_count);
                    report.dtypes = info.dtypes;
                    report.inputs = info.inputs;
                    report.outputs = info.outputs;
                    if let Some(v) = info.ir_version {
                        report.meta("ir_version", v);
                    }
                    if let Some(p) = info.producer {
                        report.meta("producer", p);
                    }
                    if let Some(o) = info.opset {
                        report.meta("opset", o);
                    }
                    report.meta("node_count", info.node_count);
                    report.meta(
                        "metadata_props",
                        Value::Object(
                            info.metadata
                                .into_iter()
                                .map(|(k, v)| (k, Value::String(v)))
                                .collect(),
                        ),
                    );
                })
        };
        (report, outcome)
    } else {
        let mut report = Report::new("none");
        report.meta("note", "no inspector reads this kind of file");
        (report, Ok(()))
    };
    if let Err(e) = outcome {
        report.error = Some(e.to_string());
    }
    report
}
