//! What a version's files say together, beyond each file's own inspection: the model card
//! (`README.md` at the root, with its YAML front matter), a transformers `config.json`, a
//! safetensors index and the shards it names, an MLflow `MLmodel`, an ONNX model's external
//! data. What is found joins the version's report; an index that names a shard the version
//! lacks, or shards it does not name, and an ONNX model whose external data is missing or
//! shorter than the model reads, make the version ERROR (held).

use std::{
    collections::{BTreeSet, HashMap},
    io::Read,
};

use modelhub_inspect::{Report, onnx::ExternalData};
use serde_json::{Map, Value, json};

use crate::{
    error::{AppError, AppResult},
    storage::{LocalCopy, StorageError},
};

/// Largest file read for facts (a model card, a config, an index).
pub const MAX_FACT_BYTES: u64 = 4 * 1024 * 1024;
/// Longest model card kept as `ModelVersion.readme`.
pub const MAX_README_BYTES: usize = 1024 * 1024;

/// Whether the file at `path` may carry facts about the version.
fn is_fact_file(path: &str, size: u64) -> bool {
    size <= MAX_FACT_BYTES
        && (matches!(path, "README.md" | "config.json" | "MLmodel")
            || path.ends_with(".safetensors.index.json"))
}

/// The bytes of the file at `path` if it is a fact file (at most [`MAX_FACT_BYTES`]), read
/// from the local copy `copy` makes; `None` (and no copy made) otherwise.
pub async fn read_if_fact(
    path: &str,
    size: u64,
    copy: impl Future<Output = Result<LocalCopy, StorageError>>,
) -> AppResult<Option<Vec<u8>>> {
    if !is_fact_file(path, size) {
        return Ok(None);
    }
    let copy = copy.await.map_err(AppError::internal)?;
    tokio::task::spawn_blocking(move || {
        let (file, _keep) = copy;
        let mut bytes = Vec::new();
        file.take(MAX_FACT_BYTES).read_to_end(&mut bytes)?;
        Ok::<_, std::io::Error>(bytes)
    })
    .await
    .map_err(AppError::internal)?
    .map(Some)
    .map_err(AppError::internal)
}

/// One file of the version, as the facts see it.
pub struct FactFile<'a> {
    pub path: &'a str,
    pub size: u64,
    /// What the file's own inspection found.
    pub report: &'a Report,
    /// Its bytes, for a fact file.
    pub bytes: Option<Vec<u8>>,
}

/// What the files say together.
#[derive(Debug, Default)]
pub struct Facts {
    /// The model card's text.
    pub readme: Option<String>,
    /// The card's front matter (license, tags, base_model, base_model_relation, datasets,
    /// pipeline_tag, library_name, language), as JSON.
    pub card: Option<Value>,
    /// Facts for the version's report, by name.
    pub meta: Map<String, Value>,
    /// What contradicts itself (the version is held as ERROR).
    pub problems: Vec<String>,
}

impl Facts {
    /// Adds the facts to the version's report.
    pub fn apply(&self, report: &mut Report) {
        if let Value::Object(meta) = &mut report.metadata {
            for (key, value) in &self.meta {
                meta.insert(key.clone(), value.clone());
            }
        }
        if let Some(first) = self.problems.first()
            && report.error.is_none()
        {
            report.error = Some(first.clone());
        }
    }

    /// A default for a model field from the card: `license`, `pipeline_tag`.
    pub fn card_text(&self, key: &str) -> Option<String> {
        self.card
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The card's tags.
    pub fn card_tags(&self) -> Vec<String> {
        match self.card.as_ref().and_then(|c| c.get("tags")) {
            Some(Value::Array(tags)) => tags
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(tag)) => vec![tag.clone()],
            _ => Vec::new(),
        }
    }
}

/// Splits a model card into its YAML front matter (between `---` lines at the top) and text.
fn front_matter(card: &str) -> Option<&str> {
    let rest = card
        .strip_prefix("---\n")
        .or_else(|| card.strip_prefix("---\r\n"))?;
    let end = rest.find("\n---")?;
    Some(&rest[..end])
}

/// What is wrong with a model card's front matter, if anything: it must be a YAML mapping
/// (a card without front matter is fine).
pub fn card_problem(card: &str) -> Option<String> {
    let yaml = front_matter(card)?;
    match serde_saphyr::from_str::<Value>(yaml) {
        Ok(Value::Object(_)) => None,
        Ok(_) => Some("the front matter is not a mapping of keys to values".to_owned()),
        Err(e) => Some(format!("the front matter is not YAML: {e}")),
    }
}

/// The card fields kept.
const CARD_KEYS: &[&str] = &[
    "license",
    "tags",
    "base_model",
    "base_model_relation",
    "datasets",
    "pipeline_tag",
    "library_name",
    "language",
];

fn read_card(text: &str, facts: &mut Facts) {
    let mut end = text.len().min(MAX_README_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    facts.readme = Some(text[..end].to_owned());
    let Some(yaml) = front_matter(text) else {
        return;
    };
    match serde_saphyr::from_str::<Value>(yaml) {
        Ok(Value::Object(all)) => {
            let kept: Map<String, Value> = all
                .into_iter()
                .filter(|(k, _)| CARD_KEYS.contains(&k.as_str()))
                .collect();
            facts
                .meta
                .insert("card".into(), Value::Object(kept.clone()));
            facts.card = Some(Value::Object(kept));
        }
        Ok(_) => {}
        Err(e) => {
            facts.meta.insert(
                "card_error".into(),
                json!(format!("the model card's front matter is not YAML: {e}")),
            );
        }
    }
}

fn read_config(bytes: &[u8], facts: &mut Facts) {
    let Ok(Value::Object(config)) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let kept: Map<String, Value> = ["architectures", "model_type", "vocab_size", "torch_dtype"]
        .iter()
        .filter_map(|key| config.get(*key).map(|v| ((*key).to_owned(), v.clone())))
        .collect();
    facts.meta.insert("config".into(), Value::Object(kept));
}

fn read_mlmodel(bytes: &[u8], facts: &mut Facts) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(Value::Object(mlmodel)) = serde_saphyr::from_str::<Value>(text) {
        let flavors: Vec<&String> = mlmodel
            .get("flavors")
            .and_then(Value::as_object)
            .map(|f| f.keys().collect())
            .unwrap_or_default();
        facts.meta.insert(
            "mlflow".into(),
            json!({ "flavors": flavors, "signature": mlmodel.get("signature") }),
        );
    }
}

/// Checks a safetensors index against the version's files: every shard it names must be in
/// the version, and every shard of its series (`…-of-…​.safetensors` beside it) named.
fn read_index(index_path: &str, bytes: &[u8], files: &[FactFile<'_>], facts: &mut Facts) {
    let folder = folder_of(index_path);
    let join = |name: &str| match folder {
        "" => name.to_owned(),
        dir => format!("{dir}/{name}"),
    };
    let Ok(index) = serde_json::from_slice::<Value>(bytes) else {
        facts
            .problems
            .push(format!("{index_path}: the safetensors index is not JSON"));
        return;
    };
    let Some(map) = index.get("weight_map").and_then(Value::as_object) else {
        facts.problems.push(format!(
            "{index_path}: the safetensors index has no weight_map"
        ));
        return;
    };
    let named: BTreeSet<String> = map.values().filter_map(Value::as_str).map(join).collect();
    let present: BTreeSet<&str> = files.iter().map(|f| f.path).collect();
    for shard in &named {
        if !present.contains(shard.as_str()) {
            facts.problems.push(format!(
                "{index_path} names {shard}, which the version does not have"
            ));
        }
    }
    let series: Vec<&str> = files
        .iter()
        .map(|f| f.path)
        .filter(|p| p.ends_with(".safetensors") && p.contains("-of-"))
        .filter(|p| folder_of(p) == folder)
        .collect();
    for shard in &series {
        if !named.contains(*shard) {
            facts.problems.push(format!(
                "{shard} is a shard that {index_path} does not name"
            ));
        }
    }
    let parameters: u64 = files
        .iter()
        .filter(|f| named.contains(f.path))
        .filter_map(|f| f.report.parameter_count)
        .sum();
    facts.meta.insert(
        "safetensors_index".into(),
        json!({
            "index": index_path,
            "shards": named.len(),
            "tensors": map.len(),
            "parameters": parameters,
            "total_size": index.get("metadata").and_then(|m| m.get("total_size")),
        }),
    );
}

/// The folder a file is in (`""` at the root).
fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The version path an ONNX external-data location names, from the model's folder (`\\`
/// separators and `.` segments as ONNX runtimes read them).
fn resolve(folder: &str, location: &str) -> String {
    folder
        .split('/')
        .chain(location.split(['/', '\\']))
        .filter(|segment| !segment.is_empty() && *segment != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The version paths of the files an ONNX model at `path` reads external data from, as its
/// stored inspection report lists them (locations outside its folder left out: such a model
/// is UNSAFE).
pub fn external_data_paths(path: &str, report: Option<&Value>) -> Vec<String> {
    let listed = report
        .and_then(|r| r["metadata"].get("external_data"))
        .cloned();
    let external: Vec<ExternalData> = listed
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    let mut paths: Vec<String> = external
        .iter()
        .filter(|d| modelhub_inspect::onnx::is_contained(&d.location))
        .map(|d| resolve(folder_of(path), &d.location))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// Checks an ONNX model's external data against the version: every file it names must be in
/// the version and at least as long as the model reads. A location outside the model's folder
/// is already UNSAFE in the model's own report and is not looked up.
fn read_external_data(
    model: &FactFile<'_>,
    sizes: &HashMap<&str, u64>,
    facts: &mut Facts,
) -> Option<Value> {
    let listed = model.report.metadata.get("external_data")?;
    let Ok(external) = serde_json::from_value::<Vec<ExternalData>>(listed.clone()) else {
        facts.problems.push(format!(
            "{}: the report's external data cannot be read",
            model.path
        ));
        return None;
    };
    let folder = folder_of(model.path);
    let mut total = 0u64;
    for data in external
        .iter()
        .filter(|d| modelhub_inspect::onnx::is_contained(&d.location))
    {
        let path = resolve(folder, &data.location);
        match sizes.get(path.as_str()) {
            None => facts.problems.push(format!(
                "{} reads external data from {path}, which the version does not have",
                model.path
            )),
            Some(&size) if size < data.bytes_needed => facts.problems.push(format!(
                "{} reads {} bytes of external data from {path}, which has {size}",
                model.path, data.bytes_needed
            )),
            Some(&size) => total = total.saturating_add(size),
        }
    }
    Some(json!({ "model": model.path, "files": external.len(), "bytes": total }))
}

/// What `files` say together.
pub fn gather(files: &[FactFile<'_>]) -> Facts {
    let mut facts = Facts::default();
    let sizes: HashMap<&str, u64> = files.iter().map(|f| (f.path, f.size)).collect();
    let external: Vec<Value> = files
        .iter()
        .filter_map(|f| read_external_data(f, &sizes, &mut facts))
        .collect();
    if !external.is_empty() {
        facts
            .meta
            .insert("onnx_external_data".into(), Value::Array(external));
    }
    for file in files {
        let Some(bytes) = &file.bytes else {
            continue;
        };
        match file.path {
            "README.md" => {
                if let Ok(text) = std::str::from_utf8(bytes) {
                    read_card(text, &mut facts);
                }
            }
            "config.json" => read_config(bytes, &mut facts),
            "MLmodel" => read_mlmodel(bytes, &mut facts),
            index => read_index(index, bytes, files, &mut facts),
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(path: &'a str, report: &'a Report, bytes: Option<&[u8]>) -> FactFile<'a> {
        FactFile {
            path,
            size: bytes.map_or(0, |b| b.len() as u64),
            report,
            bytes: bytes.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn a_card_config_and_index_are_read_together() {
        let shard = Report {
            parameter_count: Some(10),
            ..Report::default()
        };
        let none = Report::default();
        let card = b"---\nlicense: apache-2.0\ntags: [text, bert]\npipeline_tag: fill-mask\nsecret: x\n---\n# Card\n";
        let index = br#"{"metadata": {"total_size": 80}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#;
        let files = [
            file("README.md", &none, Some(card)),
            file(
                "config.json",
                &none,
                Some(br#"{"model_type": "bert", "vocab_size": 3, "x": 1}"#),
            ),
            file("model.safetensors.index.json", &none, Some(index)),
            file("model-00001-of-00002.safetensors", &shard, None),
            file("model-00002-of-00002.safetensors", &shard, None),
        ];
        let facts = gather(&files);
        assert!(facts.problems.is_empty(), "{:?}", facts.problems);
        assert_eq!(facts.card_text("license").as_deref(), Some("apache-2.0"));
        assert_eq!(facts.card_tags(), ["text", "bert"]);
        assert_eq!(
            facts.card_text("pipeline_tag").as_deref(),
            Some("fill-mask")
        );
        assert!(facts.card.as_ref().unwrap().get("secret").is_none());
        assert!(facts.readme.as_deref().unwrap().ends_with("# Card\n"));
        assert_eq!(
            facts.meta["config"],
            json!({ "model_type": "bert", "vocab_size": 3 })
        );
        assert_eq!(facts.meta["safetensors_index"]["parameters"], 20);
        assert_eq!(facts.meta["safetensors_index"]["shards"], 2);
    }

    #[test]
    fn missing_and_extra_shards_are_problems() {
        let none = Report::default();
        let index = br#"{"weight_map": {"a": "w-00001-of-00003.safetensors", "b": "w-00002-of-00003.safetensors"}}"#;
        let files = [
            file("sub/w.safetensors.index.json", &none, Some(index)),
            file("sub/w-00001-of-00003.safetensors", &none, None),
            file("sub/w-00003-of-00003.safetensors", &none, None),
        ];
        let facts = gather(&files);
        assert_eq!(facts.problems.len(), 2, "{:?}", facts.problems);
        assert!(facts.problems[0].contains("sub/w-00002-of-00003.safetensors"));
        assert!(facts.problems[1].contains("sub/w-00003-of-00003.safetensors"));
        let mut report = Report::default();
        facts.apply(&mut report);
        assert_eq!(report.status(), modelhub_inspect::Status::Error);
    }

    #[test]
    fn onnx_external_data_must_be_present_and_long_enough() {
        let model = Report {
            metadata: json!({ "external_data": [
                { "location": "weights/a.bin", "bytes_needed": 100, "tensors": 2 },
                { "location": ".\\b.bin", "bytes_needed": 50, "tensors": 1 },
                { "location": "c.bin", "bytes_needed": 10, "tensors": 1 },
                { "location": "../../etc/passwd", "bytes_needed": 1, "tensors": 1 },
            ]}),
            ..Report::default()
        };
        let none = Report::default();
        let sized = |path, size| FactFile {
            path,
            size,
            report: &none,
            bytes: None,
        };
        let files = [
            FactFile {
                path: "onnx/model.onnx",
                size: 1_000,
                report: &model,
                bytes: None,
            },
            sized("onnx/weights/a.bin", 100),
            sized("onnx/b.bin", 49),
        ];
        let facts = gather(&files);
        assert_eq!(
            facts.problems,
            [
                "onnx/model.onnx reads 50 bytes of external data from onnx/b.bin, which has 49",
                "onnx/model.onnx reads external data from onnx/c.bin, which the version does not have",
            ]
        );
        assert_eq!(
            facts.meta["onnx_external_data"],
            json!([{ "model": "onnx/model.onnx", "files": 4, "bytes": 100 }])
        );
        let whole = [
            FactFile {
                path: "model.onnx",
                size: 1_000,
                report: &model,
                bytes: None,
            },
            sized("weights/a.bin", 100),
            sized("b.bin", 50),
            sized("c.bin", 10),
        ];
        assert!(gather(&whole).problems.is_empty());
    }
}
