//! Static inspection of machine-learning model files. Nothing here loads or runs a model:
//! each format's reader walks the bytes (pickle opcodes, zip entries, headers, protobuf
//! fields) within a time and memory budget, and reports what it found. Malformed input is a
//! finding, never a panic. The crate knows nothing of the server; `cargo fuzz` drives its
//! readers directly (see `fuzz/`).
//!
//! The verdict fails closed: a file is [`Status::Safe`] only when a reader positively cleared
//! it ([`Report::clearance`] says how) — a pickle whose every import is on the allowlist, or a
//! format no loader executes. Anything a reader could not finish is `ERROR`, anything it
//! could not vouch for `UNKNOWN`. Files are recognised by their content, never by what the
//! uploader declared, except that ONNX (a protobuf without a signature) is decoded when
//! declared.

mod archive;
mod compressed;
pub mod gguf;
mod imports;
pub mod keras;
pub mod magic;
mod numpy;
pub mod onnx;
pub mod pickle;
pub mod safetensors;

use std::{
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom},
    panic::{self, AssertUnwindSafe},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use imports::Rules;

/// The verdict on a whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Positively cleared: every import is allowlisted, or the format runs no code.
    Safe,
    /// Something runs code when the file is loaded.
    Unsafe,
    /// Imports outside the allowlist, or content no reader could vouch for.
    Unknown,
    /// The file could not be read completely (malformed, or past the time or memory budget).
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

/// What the uploader says the file is. Files are recognised by their content; the
/// declaration only says which loader will read them where that matters: ONNX (a protobuf
/// has no signature) and joblib (whose inline array bytes a plain unpickler would read as
/// opcodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// A joblib dump.
    Joblib,
    /// An ONNX protobuf.
    Onnx,
    /// A text file by its name (JSON, YAML, Markdown, plain text): inert data when it is all
    /// UTF-8 within [`MAX_TEXT_BYTES`], and no pickle an unpickler would follow imports in.
    Text,
    /// Anything else.
    Other,
}

/// Largest file read as text.
pub const MAX_TEXT_BYTES: u64 = 256 * 1024 * 1024;

/// How bad an import is (ordered from harmless to dangerous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// On the allowlist.
    Safe,
    /// Not on the allowlist, not known to be dangerous.
    Unknown,
    /// Runs code, reaches the system, or cannot be checked.
    Dangerous,
}

/// One thing a model file imports or references, and what it means.
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

/// Memory one inspection may use for what it rebuilds, unless told otherwise.
pub const DEFAULT_MEMORY: u64 = 256 * 1024 * 1024;

/// The time and memory budget shared by a file's readers.
pub struct Budget {
    deadline: Instant,
    ticks: u64,
    memory_left: u64,
}

impl Budget {
    /// A budget ending `limit` from now, with [`DEFAULT_MEMORY`].
    pub fn new(limit: Duration) -> Self {
        Self {
            deadline: Instant::now() + limit,
            ticks: 0,
            memory_left: DEFAULT_MEMORY,
        }
    }

    /// The same budget with `bytes` of memory.
    pub fn with_memory(mut self, bytes: u64) -> Self {
        self.memory_left = bytes;
        self
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

    /// Fails if the deadline has passed (for long steps such as skipping data).
    pub fn check(&mut self) -> Result<(), InspectError> {
        if Instant::now() > self.deadline {
            return Err(InspectError::TooComplex(
                "the inspection ran out of time".into(),
            ));
        }
        Ok(())
    }

    /// Charges `bytes` of memory; fails once the budget is spent.
    pub fn charge(&mut self, bytes: u64) -> Result<(), InspectError> {
        match self.memory_left.checked_sub(bytes) {
            Some(left) => {
                self.memory_left = left;
                Ok(())
            }
            None => Err(InspectError::TooComplex(
                "the inspection ran out of memory".into(),
            )),
        }
    }
}

/// Everything an inspection found: stored with the version as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Which reader ran (`pickle`, `pytorch-zip`, `safetensors`, `data`, …).
    pub inspector: String,
    /// Imports found in pickles (and references in Keras configs), with their severity.
    pub findings: Vec<Finding>,
    /// Why the file could not be read completely, if it could not.
    pub error: Option<String>,
    /// How a reader positively cleared the file; without it the file is never SAFE.
    pub clearance: Option<String>,
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
    /// Raw metadata the format carries (bounded: long strings cut, long maps capped).
    pub metadata: Value,
}

/// Longest string kept in a report's metadata.
const MAX_META_STRING: usize = 1024;
/// Most entries of a metadata map kept in a report.
const MAX_META_ENTRIES: usize = 256;

/// Cuts a metadata value down to a bounded size: strings to [`MAX_META_STRING`] bytes, maps
/// and arrays to [`MAX_META_ENTRIES`] entries (values nest at most a few levels here).
fn bounded(value: Value) -> Value {
    match value {
        Value::String(s) if s.len() > MAX_META_STRING => {
            let mut end = MAX_META_STRING;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(format!("{}…", &s[..end]))
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .take(MAX_META_ENTRIES)
                .map(bounded)
                .collect(),
        ),
        Value::Object(map) => {
            let total = map.len();
            let mut kept: Map<String, Value> = map
                .into_iter()
                .take(MAX_META_ENTRIES)
                .map(|(k, v)| (k.chars().take(256).collect(), bounded(v)))
                .collect();
            if total > MAX_META_ENTRIES {
                kept.insert(
                    "…".into(),
                    json!(format!("{} more entries", total - MAX_META_ENTRIES)),
                );
            }
            Value::Object(kept)
        }
        other => other,
    }
}

impl Report {
    fn new(inspector: &str) -> Self {
        Self {
            inspector: inspector.to_owned(),
            metadata: Value::Object(Map::new()),
            ..Self::default()
        }
    }

    /// A report of an inspection that could not be made or finished: the file is held as
    /// ERROR, for the reason given.
    pub fn failed(why: impl Into<String>) -> Self {
        let mut report = Self::new("none");
        report.error = Some(why.into());
        report
    }

    fn hint(&mut self, framework: &str) {
        if !self.framework_hints.iter().any(|h| h == framework) {
            self.framework_hints.push(framework.to_owned());
        }
    }

    fn meta(&mut self, key: &str, value: impl Into<Value>) {
        if let Value::Object(map) = &mut self.metadata {
            map.insert(key.to_owned(), bounded(value.into()));
        }
    }

    fn clear(&mut self, how: &str) {
        self.clearance = Some(how.to_owned());
    }

    /// DANGEROUS findings make a file UNSAFE; otherwise a read error makes it ERROR; unknown
    /// findings make it UNKNOWN; it is SAFE only when a reader cleared it, UNKNOWN otherwise.
    pub fn status(&self) -> Status {
        let worst = self.findings.iter().map(|f| f.severity).max();
        if worst == Some(Severity::Dangerous) {
            Status::Unsafe
        } else if self.error.is_some() {
            Status::Error
        } else if worst == Some(Severity::Unknown) || self.clearance.is_none() {
            Status::Unknown
        } else {
            Status::Safe
        }
    }

    /// The report as JSON for storage: NUL characters (which a file can smuggle into names and
    /// metadata, and which PostgreSQL refuses in text) become U+FFFD.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut pending = vec![&mut value];
        while let Some(node) = pending.pop() {
            match node {
                Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
                Value::Array(items) => pending.extend(items.iter_mut()),
                Value::Object(map) => {
                    let keys: Vec<String> =
                        map.keys().filter(|k| k.contains('\0')).cloned().collect();
                    for key in keys {
                        if let Some(v) = map.remove(&key) {
                            map.insert(key.replace('\0', "\u{fffd}"), v);
                        }
                    }
                    pending.extend(map.values_mut());
                }
                _ => {}
            }
        }
        value
    }

    /// The report of a version of several files: what each file's report found, together.
    /// Its status is the worst of theirs (SAFE only when every file was cleared); errors name
    /// their file, and counts of parameters and tensors add up.
    pub fn combine<'a>(files: impl IntoIterator<Item = (&'a str, &'a Report)>) -> Self {
        let mut combined = Self::new("files");
        let mut cleared = true;
        let mut statuses = Map::new();
        for (path, report) in files {
            let status = report.status();
            cleared &= status == Status::Safe;
            if statuses.len() < MAX_META_ENTRIES {
                statuses.insert(path.to_owned(), json!(status.as_str()));
            }
            for finding in &report.findings {
                combined.absorb_finding(finding.clone());
            }
            if let (None, Some(error)) = (&combined.error, &report.error) {
                combined.error = Some(format!("{path}: {error}"));
            }
            for (total, part) in [
                (&mut combined.parameter_count, report.parameter_count),
                (&mut combined.tensor_count, report.tensor_count),
            ] {
                if let Some(part) = part {
                    *total = Some(total.unwrap_or(0).saturating_add(part));
                }
            }
            for dtype in &report.dtypes {
                if !combined.dtypes.contains(dtype) {
                    combined.dtypes.push(dtype.clone());
                }
            }
            for hint in &report.framework_hints {
                combined.hint(hint);
            }
            combined.estimator_class = combined
                .estimator_class
                .take()
                .or_else(|| report.estimator_class.clone());
            combined.sklearn_version = combined
                .sklearn_version
                .take()
                .or_else(|| report.sklearn_version.clone());
            if combined.inputs.is_empty() && combined.outputs.is_empty() {
                combined.inputs = report.inputs.clone();
                combined.outputs = report.outputs.clone();
            }
        }
        combined.meta("files", Value::Object(statuses));
        if cleared {
            combined.clear("every file of the version was cleared");
        }
        combined
    }

    /// The DANGEROUS findings, as `module.name` strings.
    pub fn dangerous(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Dangerous)
            .map(|f| format!("{}.{}", f.module, f.name))
            .collect()
    }

    fn absorb_finding(&mut self, finding: Finding) {
        if !self.findings.contains(&finding) {
            self.findings.push(finding);
        }
    }

    fn absorb_pickle(&mut self, summary: pickle::PickleSummary) {
        if summary.opcodes > 0 {
            self.meta("pickle_opcodes", summary.opcodes);
        }
        if summary.pickles > 1 {
            self.meta("pickles_in_stream", summary.pickles);
        }
        if summary.arrays > 0 {
            self.meta("inline_arrays", summary.arrays);
        }
        if summary.persistent_ids > 0 {
            self.meta("persistent_ids", summary.persistent_ids);
        }
        if summary.storages > 0 {
            self.meta("legacy_storages", summary.storages);
            self.hint("pytorch");
        }
        for finding in summary.findings {
            self.absorb_finding(finding);
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
    /// Memory for what the readers rebuild.
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(60),
            memory: DEFAULT_MEMORY,
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

/// What the readers of one file share.
struct Context<'a> {
    budget: Budget,
    rules: &'a Rules,
    declared: Declared,
}

impl Context<'_> {
    fn summary(&self) -> pickle::PickleSummary {
        pickle::PickleSummary::new(self.rules.clone())
    }
}

/// Reads a pickle-family stream (a plain pickle, a joblib dump, a legacy PyTorch file, an
/// object array's payload) to its end into `report`. Returns whether the stream held any
/// pickle at all.
fn read_pickles<R: BufRead>(
    input: &mut R,
    cx: &mut Context<'_>,
    report: &mut Report,
) -> Result<pickle::Stream, InspectError> {
    let mut summary = cx.summary();
    let outcome = pickle::walk_stream(input, &mut cx.budget, &mut summary);
    if summary.arrays > 0 && cx.declared != Declared::Joblib {
        report.absorb_finding(Finding {
            module: "joblib.numpy_pickle".into(),
            name: "inline arrays".into(),
            severity: Severity::Unknown,
            reason: "joblib array data in a file not declared JOBLIB: a plain unpickler reads those bytes as opcodes".into(),
        });
    }
    report.absorb_pickle(summary);
    outcome
}

/// The reader chosen for a file.
enum Kind {
    Gguf,
    Hdf5,
    Zip,
    Safetensors,
    Npy,
    Compressed(compressed::Codec),
    /// A container some loader opens that no reader here reads (joblib's pre-0.10 `ZF`
    /// format, a tar archive as legacy `torch.load` opens): never cleared.
    Unread(&'static str),
    Onnx,
    /// A file declared as text (and without a binary format's signature).
    Text,
    /// Anything else: read as a pickle stream; if it is none, it is inert data.
    Other,
}

/// The reader for the signature the file starts with (an HDF5 signature further in, after a
/// user block, is looked for separately: see [`also_read_as`]).
fn sniff(head: &[u8], size: u64, declared: Declared) -> Kind {
    if head.starts_with(magic::GGUF_MAGIC) {
        Kind::Gguf
    } else if head.starts_with(magic::HDF5_MAGIC) {
        Kind::Hdf5
    } else if head.starts_with(magic::ZIP_MAGIC) {
        Kind::Zip
    } else if magic::is_safetensors(head, size) {
        Kind::Safetensors
    } else if head.starts_with(numpy::MAGIC) {
        Kind::Npy
    } else if let Some(codec) = compressed::Codec::sniff(head) {
        Kind::Compressed(codec)
    } else if head.starts_with(b"ZF") {
        Kind::Unread("joblib's pre-0.10 compressed format")
    } else if magic::is_tar(head) {
        Kind::Unread("a tar archive (legacy torch.load reads pickles from it)")
    } else if declared == Declared::Onnx && head.first() != Some(&0x80) {
        Kind::Onnx
    } else if declared == Declared::Text {
        Kind::Text
    } else {
        Kind::Other
    }
}

/// Reads a text file to its end, checking that it is UTF-8 throughout.
fn read_text<R: Read>(file: &mut R, size: u64, report: &mut Report) -> Result<(), InspectError> {
    if size > MAX_TEXT_BYTES {
        return Err(InspectError::TooComplex(format!(
            "text files over {MAX_TEXT_BYTES} bytes are not read"
        )));
    }
    let mut buffer = vec![0u8; 1 << 16];
    let mut carried = 0;
    let mut total: u64 = 0;
    let mut lines: u64 = 0;
    loop {
        let n = file
            .read(&mut buffer[carried..])
            .map_err(InspectError::Io)?;
        let filled = carried + n;
        if n == 0 {
            if carried > 0 {
                return Err(InspectError::Malformed(format!(
                    "not UTF-8: the text ends inside a character at byte {total}"
                )));
            }
            break;
        }
        let valid = match std::str::from_utf8(&buffer[..filled]) {
            Ok(text) => text.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                return Err(InspectError::Malformed(format!(
                    "not UTF-8 at byte {}",
                    total + e.valid_up_to() as u64
                )));
            }
        };
        lines += buffer[..valid].iter().filter(|b| **b == b'\n').count() as u64;
        total += valid as u64;
        buffer.copy_within(valid..filled, 0);
        carried = filled - valid;
    }
    report.meta("bytes", total);
    report.meta("lines", lines);
    report.clear("text: UTF-8 throughout, read as data");
    Ok(())
}

/// What clears a stream that turned out to be pickles: every import on the allowlist.
const PICKLE_CLEARANCE: &str = "a pickle stream whose every import is on the allowlist";

fn inspect_other<R: Read + Seek>(
    file: &mut R,
    head: &[u8],
    cx: &mut Context<'_>,
) -> (Report, Result<(), InspectError>) {
    let mut report = Report::new("pickle");
    let outcome = read_pickles(
        &mut BufReader::with_capacity(1 << 20, &mut *file),
        cx,
        &mut report,
    );
    match outcome {
        Ok(pickle::Stream::Pickles) => {
            report.clear(PICKLE_CLEARANCE);
            (report, Ok(()))
        }
        // Its first byte is an opcode: a pickle this walk could not read, not data. Only
        // bytes that no unpickler takes a single step into are cleared as data.
        Ok(pickle::Stream::NotPickle { offset: 0, why })
            if head.first().is_some_and(|b| magic::is_pickle_opcode(*b)) =>
        {
            (report, Err(InspectError::Malformed(why)))
        }
        Ok(pickle::Stream::NotPickle { offset, .. }) => {
            // Not a pickle (a zip at the end is read by `also_read_as`).
            let mut report = Report::new("data");
            report.meta("not_a_pickle_at", offset);
            report.clear(
                "inert data: not a pickle stream, an archive, a compressed stream, HDF5 or a \
                 numpy array",
            );
            (report, Ok(()))
        }
        Err(e) => (report, Err(e)),
    }
}

fn inspect_file<R: Read + Seek>(
    file: &mut R,
    size: u64,
    declared: Declared,
    limits: Limits,
    rules: &Rules,
) -> Report {
    let mut head = vec![0u8; 64 * 1024];
    let read = (|| {
        let n = read_up_to(file, &mut head)?;
        head.truncate(n);
        file.seek(SeekFrom::Start(0))
    })();
    if let Err(e) = read {
        return Report::failed(format!("read error: {e}"));
    }
    let mut cx = Context {
        budget: Budget::new(limits.time).with_memory(limits.memory),
        rules,
        declared,
    };
    let kind = sniff(&head, size, declared);
    // Zips start with an opcode (`P`, a persistent id) that a plain unpickler refuses, and
    // PyTorch opens them as zips: only other formats may also be pickles.
    let polyglot = !matches!(kind, Kind::Other | Kind::Compressed(_) | Kind::Zip);
    let (mut report, outcome) = match kind {
        Kind::Gguf => {
            let mut report = Report::new("gguf");
            report.hint("llama.cpp");
            let outcome = gguf::read(&mut BufReader::new(&mut *file), &mut cx.budget).map(|info| {
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
                report.clear("GGUF: key/value metadata and raw tensor data, nothing executable");
            });
            (report, outcome)
        }
        Kind::Hdf5 => {
            let mut report = Report::new("hdf5");
            report.hint("keras");
            let outcome = keras::inspect_hdf5(&mut *file, &mut cx.budget, cx.rules, &mut report);
            (report, outcome)
        }
        Kind::Zip => {
            let mut report = Report::new("zip");
            let outcome = archive::inspect(&mut *file, &mut cx, &mut report);
            (report, outcome)
        }
        Kind::Safetensors => {
            let mut report = Report::new("safetensors");
            let outcome = safetensors::read(&mut BufReader::new(&mut *file), size).map(|info| {
                report.tensor_count = Some(info.tensor_count);
                report.parameter_count = Some(info.parameter_count);
                report.dtypes = info.dtypes;
                report.meta("metadata", json!(info.metadata));
                report.clear("safetensors: a JSON header and raw tensor data, nothing executable");
            });
            (report, outcome)
        }
        Kind::Npy => {
            let mut report = Report::new("numpy");
            let outcome = numpy::inspect(&mut BufReader::new(&mut *file), &mut cx, &mut report);
            (report, outcome)
        }
        Kind::Compressed(codec) => {
            let mut report = Report::new("pickle");
            report.meta("compression", codec.name());
            let outcome = codec
                .decoder(BufReader::new(&mut *file))
                .map_err(InspectError::Io)
                .and_then(|decoder| {
                    read_pickles(
                        &mut BufReader::with_capacity(1 << 20, decoder),
                        &mut cx,
                        &mut report,
                    )
                })
                .map(|stream| match stream {
                    pickle::Stream::Pickles => report.clear(PICKLE_CLEARANCE),
                    pickle::Stream::NotPickle { .. } => {
                        report.inspector = "compressed".into();
                        report.meta(
                            "note",
                            "a compressed stream whose content is not a pickle: not inspected",
                        );
                    }
                });
            (report, outcome)
        }
        Kind::Unread(what) => {
            let mut report = Report::new("none");
            report.meta("note", format!("{what}: not inspected"));
            (report, Ok(()))
        }
        Kind::Onnx => {
            let mut report = Report::new("onnx");
            report.hint("onnx");
            let outcome = read_onnx(&mut *file, size, &mut report);
            (report, outcome)
        }
        Kind::Text => {
            let mut report = Report::new("text");
            let outcome = read_text(&mut BufReader::new(&mut *file), size, &mut report);
            (report, outcome)
        }
        Kind::Other => inspect_other(file, &head, &mut cx),
    };
    if let Err(e) = outcome {
        report.error = Some(e.to_string());
    }
    if polyglot {
        read_as_pickle_too(file, &mut cx, &mut report);
    }
    also_read_as(file, size, &kind, &mut cx, &mut report);
    report
}

/// Other readings of the same bytes that loaders take: an HDF5 file after a user block at any
/// power of two (as libhdf5 looks for it), a zip archive at the end (zip readers look there
/// first), and, for a joblib dump, the plain unpickler's reading of its inline array bytes.
/// Each must be cleared too; what they find joins the report.
fn also_read_as<R: Read + Seek>(
    file: &mut R,
    size: u64,
    kind: &Kind,
    cx: &mut Context<'_>,
    report: &mut Report,
) {
    let other =
        |label: &str, outcome: Result<(), InspectError>, found: Report, report: &mut Report| {
            for finding in found.findings {
                report.absorb_finding(finding);
            }
            if let Err(e) = outcome {
                report
                    .error
                    .get_or_insert(format!("the file is also {label} that cannot be read: {e}"));
            } else if let Some(error) = found.error {
                report.error.get_or_insert(error);
            } else if found.clearance.is_none() {
                report.clearance = None;
                report.meta(
                    "note",
                    format!("the file is also {label} that was not cleared"),
                );
            }
            report.meta(&format!("also_{}", label.replace(' ', "_")), true);
        };
    if !matches!(kind, Kind::Hdf5) {
        match magic::hdf5_offset(file, size) {
            Ok(Some(_)) => {
                let mut found = Report::new("hdf5");
                let outcome = file
                    .seek(SeekFrom::Start(0))
                    .map_err(InspectError::Io)
                    .and_then(|_| {
                        keras::inspect_hdf5(&mut *file, &mut cx.budget, cx.rules, &mut found)
                    });
                other("an HDF5 file", outcome, found, report);
            }
            Ok(None) => {}
            Err(e) => {
                report.error.get_or_insert(format!("read error: {e}"));
            }
        }
    }
    if !matches!(kind, Kind::Zip) && archive::has_trailing_directory(file, size).unwrap_or(true) {
        let mut found = Report::new("zip");
        let outcome = archive::inspect(&mut *file, cx, &mut found);
        other("a zip archive", outcome, found, report);
    }
    if matches!(kind, Kind::Other) && report.metadata.get("inline_arrays").is_some() {
        // pickle.load or torch.load of this file would read the array bytes as opcodes.
        let mut summary = cx.summary();
        let walked = file
            .seek(SeekFrom::Start(0))
            .map_err(InspectError::Io)
            .and_then(|_| {
                pickle::walk_plain(
                    &mut BufReader::with_capacity(1 << 20, &mut *file),
                    &mut cx.budget,
                    &mut summary,
                )
            });
        if let Err(InspectError::TooComplex(e)) = walked {
            report
                .error
                .get_or_insert(format!("too complex to inspect: {e}"));
        }
        for finding in summary.findings {
            if finding.severity == Severity::Dangerous {
                report.absorb_finding(finding);
            }
        }
    }
    let _ = file.seek(SeekFrom::Start(0));
}

/// A file of another format can be a pickle as well (an HDF5 user block, a zip with a
/// prefix, a header that happens to parse): `pickle.load` and `torch.load` read it from its
/// first byte. If that reading imports anything, it must be read to its end and cleared too.
fn read_as_pickle_too<R: Read + Seek>(file: &mut R, cx: &mut Context<'_>, report: &mut Report) {
    if let Err(e) = file.seek(SeekFrom::Start(0)) {
        report.error.get_or_insert(format!("read error: {e}"));
        return;
    }
    let mut summary = cx.summary();
    let outcome = pickle::walk_stream(
        &mut BufReader::with_capacity(1 << 16, &mut *file),
        &mut cx.budget,
        &mut summary,
    );
    if summary.lookups == 0 {
        // Not a pickle that imports anything; unless the walk could not finish.
        if let Err(e @ (InspectError::TooComplex(_) | InspectError::Io(_))) = outcome {
            report.error.get_or_insert(e.to_string());
        }
        return;
    }
    report.meta("also_a_pickle", true);
    report.absorb_pickle(summary);
    if let Err(e) = outcome {
        report.error.get_or_insert(format!(
            "the file is also a pickle that cannot be read: {e}"
        ));
    }
}

fn read_onnx<R: Read>(file: &mut R, size: u64, report: &mut Report) -> Result<(), InspectError> {
    if size > onnx::MAX_BYTES {
        return Err(InspectError::TooComplex(format!(
            "ONNX files over {} bytes are not decoded",
            onnx::MAX_BYTES
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)?;
    let info = onnx::read(&bytes)?;
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
    for external in &info.external_data {
        if !onnx::is_contained(&external.location) {
            report.findings.push(Finding {
                module: "<onnx external data>".into(),
                name: external.location.clone(),
                severity: Severity::Dangerous,
                reason: "the model reads weights from a file outside its own folder".into(),
            });
        }
    }
    // Listed in full (not cut like other metadata): the version checks every file named.
    if !info.external_data.is_empty()
        && let Value::Object(meta) = &mut report.metadata
    {
        meta.insert(
            "external_data".into(),
            serde_json::to_value(&info.external_data).unwrap_or(Value::Null),
        );
    }
    report.meta(
        "metadata_props",
        Value::Object(
            info.metadata
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    report.clear("ONNX: a protobuf graph and tensors, nothing executable");
    Ok(())
}

/// Inspects a model file of `size` bytes, recognised by its content, with imports classified
/// by `rules`. Never panics: a reader that does anyway yields an ERROR report.
pub fn inspect<R: Read + Seek>(
    file: &mut R,
    size: u64,
    declared: Declared,
    limits: Limits,
    rules: &Rules,
) -> Report {
    match panic::catch_unwind(AssertUnwindSafe(|| {
        inspect_file(file, size, declared, limits, rules)
    })) {
        Ok(report) => report,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            Report::failed(format!("the inspector failed: {why}"))
        }
    }
}
