//! Running ONNX models (`predict`), in process with a pure-Rust runtime ([`runtime`]). A run
//! is asked of the same access policy as a download, and never of a version the inspection
//! gate holds. Calls are rate limited per caller and bounded in rows and values; at most
//! `MODELHUB_INFERENCE_CONCURRENCY` run at once, each on a blocking thread, so inference
//! cannot take every core from the API; each call has a time limit, waiting included, that
//! stops its run between two operators (a single operator past it runs to its end, in its
//! slot, while the call answers). Loaded models stay in a pool bounded by the bytes of their
//! files, the least recently used unloaded first.

mod runtime;
pub mod tensors;

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use tokio::{io::AsyncWriteExt, sync::Semaphore};
use uuid::Uuid;

use self::{
    runtime::{LoadError, Loaded, RunError},
    tensors::{Limits, Output},
};
use super::{
    downloads::{self, Credentials, Grant},
    gate,
    rate_limit::{Action, caller_key},
};
use crate::{
    auth::Viewer,
    config::InferenceOptions,
    entities::{enums::ModelFormat, model_version, version_file},
    error::{AppError, AppResult},
    state::AppState,
    storage::StorageError,
};

/// The runs of this process: the pool of loaded models and the slots runs take.
pub struct Inference {
    pool: moka::future::Cache<(Uuid, String), Arc<Loaded>>,
    slots: Arc<Semaphore>,
    options: InferenceOptions,
}

/// Why a model could not be put in the pool (shared by every call that waited for it).
#[derive(Debug, thiserror::Error)]
enum Unloadable {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("reading the model's files")]
    Storage(#[from] StorageError),
    #[error("the loading thread failed")]
    Thread(#[from] tokio::task::JoinError),
}

/// A load failure, as each of the calls that waited for it reports it.
#[derive(Debug)]
struct Shared(Arc<Unloadable>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

/// What one call answered.
pub struct Prediction {
    pub version: model_version::Model,
    /// The model file that ran.
    pub path: String,
    pub outputs: Vec<Output>,
    /// How long the call took, waiting and loading included.
    pub took: Duration,
}

impl Inference {
    /// An empty pool for `options`.
    pub fn new(options: &InferenceOptions) -> Self {
        // Weighed in KiB, so that a model of any size fits the weigher's range.
        let pool = moka::future::Cache::builder()
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .max_capacity(options.memory_bytes / 1024)
            .weigher(|_, model: &Arc<Loaded>| {
                u32::try_from(model.bytes.div_ceil(1024)).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            pool,
            slots: Arc::new(Semaphore::new(options.concurrency)),
            options: options.clone(),
        }
    }

    /// How many runs could start now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// How many models are loaded, and the bytes of their files.
    pub async fn loaded(&self) -> (u64, u64) {
        self.pool.run_pending_tasks().await;
        (self.pool.entry_count(), self.pool.weighted_size() * 1024)
    }
}

/// Runs the ONNX model of version `version_id` (its file at `path`, or its one ONNX file) on
/// `inputs`, an object of input names to nested arrays.
pub async fn predict(
    state: &AppState,
    viewer: &Viewer,
    client: Option<IpAddr>,
    version_id: Uuid,
    path: Option<&str>,
    inputs: &serde_json::Value,
) -> AppResult<Prediction> {
    let started = Instant::now();
    let inference = &state.inference;
    let deadline = started + inference.options.timeout;
    let caller = caller_key(viewer.user_id(), client);
    state.limiter.check(Action::Predict, &caller).await?;
    let values = inputs.as_object().ok_or_else(|| {
        AppError::bad_input(
            "inputs",
            "must be an object of input names to nested arrays",
        )
    })?;
    let grant =
        downloads::authorize_version(state, Credentials::Viewer(viewer), version_id).await?;
    let files = downloads::files_of_version(state, &grant).await?;
    let file = model_file(&files, path)?;
    let external = external_files(&files, file)?;
    if let Some(why) = gate::version_hold_reason(&grant.version) {
        return Err(AppError::Forbidden(format!(
            "version {} is held by the inspection gate ({why}); held versions are never run",
            grant.version.version
        )));
    }
    for held in std::iter::once(file).chain(external.iter().copied()) {
        if let Some(why) = gate::file_hold_reason(&grant.version, held) {
            return Err(AppError::Forbidden(format!(
                "version {} is held by the inspection gate ({}: {why}); held versions are never run",
                grant.version.version, held.path
            )));
        }
    }
    let bytes = external
        .iter()
        .chain([&file])
        .map(|f| u64::try_from(f.size_bytes).unwrap_or_default())
        .sum::<u64>();
    if bytes > inference.options.memory_bytes {
        return Err(AppError::bad_input(
            "versionId",
            format!(
                "the model's files have {bytes} bytes; models run here may have at most {} (MODELHUB_INFERENCE_MEMORY_BYTES)",
                inference.options.memory_bytes
            ),
        ));
    }
    let slot = tokio::time::timeout_at(deadline.into(), inference.slots.clone().acquire_owned())
        .await
        .map_err(|_| {
            AppError::TimedOut(format!(
                "all {} inference slots stayed busy for the call's time limit; try again",
                inference.options.concurrency
            ))
        })?
        .map_err(AppError::internal)?;
    let key = (grant.version.id, file.path.clone());
    let loaded = inference
        .pool
        .try_get_with(key, load(state, file, &external, bytes))
        .await
        .map_err(unloadable)?;
    let limits = Limits {
        max_batch: inference.options.max_batch,
        max_values: inference.options.max_values,
    };
    let tensors = tensors::inputs(&loaded.inputs, values, limits)?;
    let model = loaded.clone();
    let run = tokio::task::spawn_blocking(move || {
        // The slot is given back when the run really ends, not when the caller stops waiting.
        let _slot = slot;
        model.run(tensors, deadline)
    });
    // One long operator is not stopped between operators: the caller stops waiting for it.
    let ran = match tokio::time::timeout_at(deadline.into(), run).await {
        Ok(Ok(ran)) => ran,
        Ok(Err(e)) if e.is_panic() => Err(RunError::Failed("the runtime stopped".into())),
        Ok(Err(e)) => return Err(AppError::internal(e)),
        Err(_) => Err(RunError::TimedOut),
    };
    let outputs = match ran {
        Ok(outputs) => outputs,
        Err(RunError::TimedOut) => {
            return Err(AppError::TimedOut(format!(
                "the model ran past the time limit of {} ms",
                inference.options.timeout.as_millis()
            )));
        }
        Err(RunError::Failed(why)) => {
            return Err(AppError::bad_input(
                "inputs",
                format!("the model failed on them: {why}"),
            ));
        }
    };
    let outputs = loaded
        .outputs
        .iter()
        .zip(&outputs)
        .map(|(name, tensor)| tensors::output(name, tensor))
        .collect::<AppResult<_>>()?;
    let Grant { version, .. } = grant;
    let took = started.elapsed();
    metrics::histogram!("modelhub_predict_seconds").record(took.as_secs_f64());
    tracing::info!(version_id = %version.id, path = %file.path, took_ms = took.as_millis(), "model run");
    Ok(Prediction {
        version,
        path: file.path.clone(),
        outputs,
        took,
    })
}

/// The ONNX file to run: the one at `path`, or the version's only one.
fn model_file<'f>(
    files: &'f [version_file::Model],
    path: Option<&str>,
) -> AppResult<&'f version_file::Model> {
    let onnx = |f: &&version_file::Model| f.format == ModelFormat::Onnx;
    match path {
        Some(path) => files
            .iter()
            .find(|f| f.path == path)
            .filter(onnx)
            .ok_or_else(|| {
                AppError::bad_input(
                    "path",
                    format!("{path} is not an ONNX file of this version"),
                )
            }),
        None => {
            let mut found = files.iter().filter(onnx);
            match (found.next(), found.next()) {
                (Some(one), None) => Ok(one),
                (None, _) => Err(AppError::bad_input(
                    "versionId",
                    "the version has no ONNX model; only ONNX models are run",
                )),
                (Some(_), Some(_)) => Err(AppError::bad_input(
                    "path",
                    "the version has several ONNX models: name the one to run",
                )),
            }
        }
    }
}

/// The version's files `file` reads external data from.
fn external_files<'f>(
    files: &'f [version_file::Model],
    file: &version_file::Model,
) -> AppResult<Vec<&'f version_file::Model>> {
    super::version_facts::external_data_paths(&file.path, file.inspection.as_ref())
        .iter()
        .map(|path| {
            files.iter().find(|f| &f.path == path).ok_or_else(|| {
                AppError::bad_input(
                    "versionId",
                    format!(
                        "{} reads external data from {path}, which the version does not have",
                        file.path
                    ),
                )
            })
        })
        .collect()
}

/// Reads a model's files and loads it (on a blocking thread).
async fn load(
    state: &AppState,
    file: &version_file::Model,
    external: &[&version_file::Model],
    bytes: u64,
) -> Result<Arc<Loaded>, Unloadable> {
    let model = read(state, &file.sha256).await?;
    // External data is read by the runtime from files laid out as the model names them.
    let dir = match external {
        [] => None,
        _ => {
            let dir = tempfile::tempdir().map_err(StorageError::from)?;
            let folder = file.path.rsplit_once('/').map_or("", |(folder, _)| folder);
            for data in external {
                let relative = data.path.strip_prefix(folder).unwrap_or(&data.path);
                let target = dir.path().join(relative.trim_start_matches('/'));
                write(state, &data.sha256, &target).await?;
            }
            Some(dir)
        }
    };
    let loaded = tokio::task::spawn_blocking(move || {
        runtime::load(&model, dir.as_ref().map(tempfile::TempDir::path), bytes)
    })
    .await??;
    Ok(Arc::new(loaded))
}

/// A blob's bytes.
async fn read(state: &AppState, sha256: &str) -> Result<Vec<u8>, StorageError> {
    let mut stream = state.blobs.read(sha256, None).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

/// Copies a blob to a local file.
async fn write(state: &AppState, sha256: &str, to: &std::path::Path) -> Result<(), StorageError> {
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut out = tokio::fs::File::create(to).await?;
    let mut stream = state.blobs.read(sha256, None).await?;
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(())
}

/// The error of a model that could not be loaded.
fn unloadable(e: Arc<Unloadable>) -> AppError {
    match &*e {
        Unloadable::Load(load) => AppError::bad_input("versionId", load.to_string()),
        // The model's bytes made the runtime fail, not the hub.
        Unloadable::Thread(thread) if thread.is_panic() => {
            AppError::bad_input("versionId", "the runtime failed loading the model")
        }
        Unloadable::Storage(_) | Unloadable::Thread(_) => AppError::internal(Shared(e)),
    }
}
