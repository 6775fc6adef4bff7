//! Zip archives: PyTorch checkpoints (`*/data.pkl` and tensor storages under `*/data/`) and
//! Keras v3 files (`config.json`, `metadata.json`). Every pickle inside is walked.

use std::io::{BufReader, Read, Seek};

use serde_json::Value;

use crate::{Budget, InspectError, Report, keras, pickle};

/// Most entries read from an archive.
const MAX_ENTRIES: usize = 100_000;
/// Largest JSON entry read.
const MAX_JSON: u64 = 16 * 1024 * 1024;

fn zip_error(e: zip::result::ZipError) -> InspectError {
    InspectError::Malformed(format!("bad zip archive: {e}"))
}

/// Inspects the archive's entries.
pub fn inspect<R: Read + Seek>(
    file: &mut R,
    budget: &mut Budget,
    report: &mut Report,
) -> Result<(), InspectError> {
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    if archive.len() > MAX_ENTRIES {
        return Err(InspectError::TooComplex(format!(
            "{} entries",
            archive.len()
        )));
    }
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(zip_error)?;
    let storages = names
        .iter()
        .filter(|n| n.contains("/data/") && !n.ends_with('/') && !n.ends_with(".pkl"))
        .count();
    let pickles: Vec<&String> = names.iter().filter(|n| n.ends_with(".pkl")).collect();
    let mut summary = pickle::PickleSummary::default();
    let mut outcome = Ok(());
    for name in &pickles {
        let entry = archive.by_name(name).map_err(zip_error)?;
        if let Err(e) = pickle::walk(&mut BufReader::new(entry), budget, &mut summary, false) {
            outcome = Err(InspectError::Malformed(format!("{name}: {e}")));
            break;
        }
    }
    if !pickles.is_empty() {
        report.inspector = "pytorch-zip".into();
        report.hint("pytorch");
        report.tensor_count = Some(storages as u64);
        report.meta(
            "pickles",
            pickles
                .iter()
                .map(|p| Value::from(p.as_str()))
                .collect::<Vec<_>>(),
        );
        report.meta("pickle_opcodes", summary.opcodes);
    }
    report.absorb_pickle(summary);
    for json_name in ["config.json", "metadata.json"] {
        if !names.iter().any(|n| n == json_name) {
            continue;
        }
        let mut text = Vec::new();
        archive
            .by_name(json_name)
            .map_err(zip_error)?
            .take(MAX_JSON)
            .read_to_end(&mut text)?;
        let parsed: Value = serde_json::from_slice(&text)
            .map_err(|e| InspectError::Malformed(format!("{json_name}: {e}")))?;
        report.inspector = if pickles.is_empty() {
            "keras-zip".into()
        } else {
            report.inspector.clone()
        };
        report.hint("keras");
        if json_name == "config.json" {
            let mut summary = serde_json::Map::new();
            keras::summarise_config(&parsed, &mut summary);
            for (k, v) in summary {
                report.meta(&k, v);
            }
        } else {
            for key in ["keras_version", "date_saved"] {
                if let Some(v) = parsed.get(key) {
                    report.meta(key, v.clone());
                }
            }
        }
    }
    if pickles.is_empty() && report.inspector == "zip" {
        report.inspector = "none".into();
        report.meta("note", "a zip archive without pickles or a Keras config");
    }
    outcome
}
