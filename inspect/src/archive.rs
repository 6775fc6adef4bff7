//! Zip archives: PyTorch checkpoints (`*/data.pkl` and tensor storages under `*/data/`),
//! Keras v3 files (`config.json`, `metadata.json`, `model.weights.h5`) and numpy `.npz`
//! files. Every entry is looked at: each that is a pickle by name or by content is walked,
//! `.npy` entries are read, Keras configs checked; the archive is cleared only when every
//! entry was. Names a loader could read differently than this reader does (duplicates,
//! absolute or `..` paths, backslashes, control characters), overlapping entries and entries
//! that cannot be decompressed make the archive malformed.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
};

use serde_json::Value;

use crate::{Context, Finding, InspectError, Report, Severity, keras, magic, numpy, pickle};

/// Most entries read from an archive.
const MAX_ENTRIES: usize = 100_000;
/// Largest JSON entry read.
const MAX_JSON: u64 = 16 * 1024 * 1024;
/// How far from its end a zip's end-of-central-directory record can be (its comment is at
/// most 65,535 bytes).
const EOCD_SEARCH: u64 = 65_535 + 22;

fn zip_error(e: zip::result::ZipError) -> InspectError {
    InspectError::Malformed(format!("bad zip archive: {e}"))
}

/// Largest central directory read (about 700,000 entries of short names).
const MAX_DIRECTORY: u64 = 64 * 1024 * 1024;

/// The size of the archive's central directory, from its end records (zip64 included), so
/// that a huge one is refused before it is parsed.
fn directory_size<R: Read + Seek>(file: &mut R, size: u64) -> std::io::Result<Option<u64>> {
    let from = size.saturating_sub(EOCD_SEARCH);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(EOCD_SEARCH).read_to_end(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    let Some(at) = tail.windows(4).rposition(|w| w == b"PK\x05\x06") else {
        return Ok(None);
    };
    // Zip readers disagree on which of several end records counts.
    if tail.windows(4).filter(|w| *w == b"PK\x05\x06").count() > 1 {
        return Err(std::io::Error::other(
            "the archive has more than one end-of-directory record",
        ));
    }
    let field = |range: std::ops::Range<usize>| tail.get(range.clone()).map(<[u8]>::to_vec);
    let Some(cd) = field(at + 12..at + 16) else {
        return Ok(None);
    };
    let cd = u64::from(u32::from_le_bytes([cd[0], cd[1], cd[2], cd[3]]));
    if cd != 0xFFFF_FFFF {
        return Ok(Some(cd));
    }
    // Zip64: the locator just before the record points at the zip64 end record.
    let Some(locator) = at.checked_sub(20).and_then(|l| field(l..l + 20)) else {
        return Ok(None);
    };
    if &locator[..4] != b"PK\x06\x07" {
        return Ok(None);
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&locator[8..16]);
    file.seek(SeekFrom::Start(u64::from_le_bytes(offset)))?;
    let mut record = [0u8; 56];
    let read = file.read_exact(&mut record);
    file.seek(SeekFrom::Start(0))?;
    if read.is_err() || &record[..4] != b"PK\x06\x06" {
        return Err(std::io::Error::other(
            "the zip64 end record is not where its locator says",
        ));
    }
    let mut cd = [0u8; 8];
    cd.copy_from_slice(&record[40..48]);
    Ok(Some(u64::from_le_bytes(cd)))
}

/// Whether the last bytes of the file hold a zip end-of-central-directory record: zip readers
/// find an archive there whatever precedes it.
pub fn has_trailing_directory<R: Read + Seek>(file: &mut R, size: u64) -> std::io::Result<bool> {
    let from = size.saturating_sub(EOCD_SEARCH);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(EOCD_SEARCH).read_to_end(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
}

/// Why an entry name is one a loader might resolve differently, if it is.
fn odd_name(name: &str) -> Option<&'static str> {
    if name.starts_with('/') {
        Some("is absolute")
    } else if name.contains('\\') {
        Some("holds a backslash")
    } else if name.chars().any(char::is_control) {
        Some("holds a control character")
    } else if name
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        Some("holds a `.` or `..` segment")
    } else {
        None
    }
}

/// What one entry is.
enum Entry {
    Pickle,
    Npy,
    Json,
    Hdf5,
    /// Tensor storages the pickles name: raw bytes.
    Storage,
    /// Anything else: read as a pickle too, and cleared as data only if that reading
    /// imports nothing.
    Other,
    /// Code that a loader runs (TorchScript sources).
    TorchScript,
    /// An archive or compressed stream inside the archive: not inspected.
    Nested,
}

/// Whether an entry is named as a pickle (PyTorch's reader matches names ignoring case).
fn pickle_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".pkl")
}

fn classify(name: &str, head: &[u8], storages: &HashSet<String>) -> Entry {
    let base = name.rsplit('/').next().unwrap_or(name);
    let storage = name
        .rsplit_once("/data/")
        .is_some_and(|(_, key)| storages.contains(key));
    if pickle_name(name) || (!storage && magic::is_pickle_protocol(head)) {
        Entry::Pickle
    } else if storage {
        Entry::Storage
    } else if name.ends_with(".npy") || head.starts_with(numpy::MAGIC) {
        Entry::Npy
    } else if magic::is_hdf5(head) {
        Entry::Hdf5
    } else if name.to_ascii_lowercase().contains("/code/") {
        Entry::TorchScript
    } else if head.starts_with(magic::ZIP_MAGIC) || magic::is_joblib_compressed(head) {
        Entry::Nested
    } else if matches!(base, "config.json" | "metadata.json") && !name.contains('/') {
        Entry::Json
    } else {
        Entry::Other
    }
}

/// Whether an entry's extra fields rename it (the Info-ZIP Unicode Path field, 0x7075): this
/// reader would use the new name, PyTorch's the raw one.
fn renames(extra: &[u8]) -> bool {
    let mut rest = extra;
    while let [a, b, c, d, tail @ ..] = rest {
        let (id, len) = (
            u16::from_le_bytes([*a, *b]),
            usize::from(u16::from_le_bytes([*c, *d])),
        );
        if id == 0x7075 {
            return true;
        }
        rest = tail.get(len..).unwrap_or_default();
    }
    false
}

/// Inspects the archive's entries.
pub fn inspect<R: Read + Seek>(
    file: &mut R,
    cx: &mut Context<'_>,
    report: &mut Report,
) -> Result<(), InspectError> {
    let size = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let directory = directory_size(file, size)
        .map_err(|e| InspectError::Malformed(format!("bad zip archive: {e}")))?;
    if let Some(directory) = directory
        && directory > MAX_DIRECTORY
    {
        return Err(InspectError::TooComplex(format!(
            "a central directory of {directory} bytes"
        )));
    }
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    if archive.len() > MAX_ENTRIES {
        return Err(InspectError::TooComplex(format!(
            "{} entries",
            archive.len()
        )));
    }
    if archive.has_duplicate_names() {
        return Err(InspectError::Malformed(
            "the archive names an entry twice (loaders disagree on which one counts)".into(),
        ));
    }
    if archive.has_overlapping_entries().map_err(zip_error)? {
        return Err(InspectError::Malformed(
            "entries of the archive overlap".into(),
        ));
    }
    let mut names = Vec::with_capacity(archive.len());
    let mut folded = HashSet::with_capacity(archive.len());
    for index in 0..archive.len() {
        let name = archive
            .name_for_index(index)
            .ok_or_else(|| InspectError::Malformed("an entry without a name".into()))?
            .map_err(zip_error)?
            .into_owned();
        if let Some(why) = odd_name(&name) {
            return Err(InspectError::Malformed(format!("entry `{name}` {why}")));
        }
        if !folded.insert(name.to_lowercase()) {
            return Err(InspectError::Malformed(format!(
                "entry `{name}` differs from another only in case (loaders disagree on which one counts)"
            )));
        }
        names.push(name);
    }
    // Pickles named as such first: their persistent ids tell which entries are storages.
    let mut summary = cx.summary();
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| !pickle_name(&names[i]));
    let mut pickles = Vec::new();
    let mut uncleared = Vec::new();
    let mut storages = HashSet::new();
    let mut keras_config = false;
    let mut npy = 0u64;
    let mut outcome = Ok(());
    for index in order {
        cx.budget.tick()?;
        let name = &names[index];
        if name.ends_with('/') {
            continue;
        }
        let entry = archive.by_index(index).map_err(zip_error)?;
        if entry.extra_data().is_some_and(|extra| renames(&extra)) {
            outcome = Err(InspectError::Malformed(format!(
                "entry `{name}` carries a second name (a Unicode Path field)"
            )));
            break;
        }
        let mut entry = BufReader::with_capacity(1 << 16, entry);
        let head = entry
            .fill_buf()
            .map_err(|e| entry_error(name, e.into()))?
            .to_vec();
        if storages.is_empty() {
            storages = summary.storage_key_set();
        }
        let read = match classify(name, &head, &storages) {
            Entry::Pickle => {
                pickles.push(name.clone());
                match pickle::walk_stream(&mut entry, &mut cx.budget, &mut summary) {
                    Ok(pickle::Stream::Pickles) => Ok(()),
                    Ok(pickle::Stream::NotPickle { .. }) => {
                        Err(InspectError::Malformed("it is not a pickle".into()))
                    }
                    Err(e) => Err(e),
                }
            }
            Entry::Npy => {
                npy += 1;
                report.clearance = None;
                let read = numpy::inspect(&mut entry, cx, report);
                if report.clearance.take().is_none() {
                    uncleared.push(name.clone());
                }
                read
            }
            Entry::Hdf5 => {
                report.clearance = None;
                let read = keras::inspect_hdf5(&mut entry, &mut cx.budget, cx.rules, report);
                if report.clearance.take().is_none() {
                    uncleared.push(name.clone());
                }
                read
            }
            Entry::Json => {
                keras_config |= read_keras_json(name, &mut entry, cx, report)?;
                Ok(())
            }
            Entry::TorchScript => {
                report.absorb_finding(Finding {
                    module: "torchscript".into(),
                    name: name.clone(),
                    severity: Severity::Unknown,
                    reason: "TorchScript code, compiled and run by torch.jit.load".into(),
                });
                drain(&mut entry, cx)
            }
            Entry::Nested => {
                uncleared.push(name.clone());
                Ok(())
            }
            // Read to the end all the same: an entry that cannot be decompressed is an error.
            Entry::Storage => drain(&mut entry, cx),
            Entry::Other => {
                let mut other = cx.summary();
                let walked = pickle::walk_stream(&mut entry, &mut cx.budget, &mut other);
                if other.lookups > 0 {
                    pickles.push(name.clone());
                    summary.absorb(other);
                    walked.map(|_| ())
                } else {
                    drain(&mut entry, cx)
                }
            }
        };
        if let Err(e) = read {
            outcome = Err(entry_error(name, e));
            break;
        }
    }
    if !pickles.is_empty() {
        report.inspector = "pytorch-zip".into();
        report.hint("pytorch");
        report.tensor_count = Some(storages.len() as u64);
        report.meta(
            "pickles",
            pickles
                .iter()
                .take(64)
                .map(|p| Value::from(p.as_str()))
                .collect::<Vec<_>>(),
        );
    }
    report.absorb_pickle(summary);
    if keras_config && pickles.is_empty() {
        report.inspector = "keras-zip".into();
    } else if npy > 0 && pickles.is_empty() && !keras_config {
        report.inspector = "npz".into();
    }
    if !uncleared.is_empty() {
        report.meta(
            "uninspected_entries",
            uncleared
                .iter()
                .take(64)
                .map(|n| Value::from(n.as_str()))
                .collect::<Vec<_>>(),
        );
    } else if pickles.is_empty() && !keras_config && npy == 0 {
        report.meta(
            "note",
            "a zip archive without pickles, numpy arrays or a Keras config",
        );
    } else {
        report.clear("an archive whose every pickle imports only allowlisted names and whose other entries are data");
    }
    outcome
}

fn entry_error(name: &str, e: InspectError) -> InspectError {
    match e {
        InspectError::Malformed(why) => InspectError::Malformed(format!("{name}: {why}")),
        InspectError::TooComplex(why) => InspectError::TooComplex(format!("{name}: {why}")),
        InspectError::Io(io) => InspectError::Malformed(format!("{name} cannot be read: {io}")),
    }
}

/// Reads an entry to its end (checking that it decompresses), within the time budget.
fn drain<R: Read>(entry: &mut R, cx: &mut Context<'_>) -> Result<(), InspectError> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        cx.budget.check()?;
        match entry.read(&mut buf)? {
            0 => return Ok(()),
            _ => continue,
        }
    }
}

/// A Keras v3 `config.json` (checked for code) or `metadata.json`; returns whether it was the
/// model config.
fn read_keras_json<R: Read>(
    name: &str,
    entry: &mut R,
    cx: &mut Context<'_>,
    report: &mut Report,
) -> Result<bool, InspectError> {
    let mut text = Vec::new();
    entry.take(MAX_JSON + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_JSON {
        return Err(InspectError::TooComplex(format!(
            "{name} is over {MAX_JSON} bytes"
        )));
    }
    let parsed: Value = serde_json::from_slice(&text)
        .map_err(|e| InspectError::Malformed(format!("{name}: {e}")))?;
    report.hint("keras");
    if name == "config.json" {
        keras::check_config(&parsed, cx.rules, report);
        let mut summary = serde_json::Map::new();
        keras::summarise_config(&parsed, &mut summary);
        for (k, v) in summary {
            report.meta(&k, v);
        }
        return Ok(true);
    }
    for key in ["keras_version", "date_saved"] {
        if let Some(v) = parsed.get(key) {
            report.meta(key, v.clone());
        }
    }
    Ok(false)
}
