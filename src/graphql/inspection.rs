//! A version's inspection report in GraphQL.

use async_graphql::{Enum, Json, Object, SimpleObject};
use modelhub_inspect::{Report, onnx::TensorSpec};
use serde_json::Value;

use super::scalars::BigInt;
use crate::entities::{enums::InspectionStatus, model_version, version_file};

/// How bad an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "modelhub_inspect::Severity")]
pub enum FindingSeverity {
    /// On the allowlist of model building blocks.
    Safe,
    /// Not on the allowlist, not known to be dangerous.
    Unknown,
    /// Runs code, reaches the system, or cannot be checked statically.
    Dangerous,
}

/// Something a model file imports, and what it means.
#[derive(SimpleObject)]
pub struct InspectionFinding {
    /// The Python module (`<dynamic>` for one computed while loading).
    module: String,
    /// The name imported from it.
    name: String,
    severity: FindingSeverity,
    /// Why, in plain words.
    reason: String,
}

/// A graph input or output.
#[derive(SimpleObject)]
pub struct TensorInfo {
    name: String,
    /// e.g. `FLOAT`, `INT64`.
    element_type: String,
    /// Dimensions: numbers, or symbolic names such as `batch`.
    shape: Vec<String>,
}

fn tensors(specs: &[TensorSpec]) -> Vec<TensorInfo> {
    specs
        .iter()
        .map(|t| TensorInfo {
            name: t.name.clone(),
            element_type: t.element_type.clone(),
            shape: t.shape.clone(),
        })
        .collect()
}

/// What the static inspection of a version's file found. The file is never loaded or run.
pub struct Inspection {
    status: InspectionStatus,
    report: Report,
}

impl Inspection {
    /// The inspection of a stored version (for a version of several files, what its files'
    /// inspections found together).
    pub fn of(version: &model_version::Model) -> Self {
        Self::stored(
            version.id,
            version.inspection_status,
            version.inspection.as_ref(),
        )
    }

    /// The inspection of one stored file.
    pub fn of_file(file: &version_file::Model) -> Self {
        Self::stored(file.id, file.inspection_status, file.inspection.as_ref())
    }

    fn stored(id: uuid::Uuid, status: InspectionStatus, report: Option<&Value>) -> Self {
        Self {
            status,
            report: match report.cloned().map(serde_json::from_value::<Report>) {
                Some(Ok(report)) => report,
                Some(Err(e)) => {
                    tracing::error!(%id, error = %e, "a stored inspection report cannot be read");
                    Report::failed(format!("the stored report cannot be read: {e}"))
                }
                None => Report::default(),
            },
        }
    }
}

#[Object]
impl Inspection {
    /// SAFE (positively cleared: see `clearance`), UNSAFE (runs code when loaded), UNKNOWN
    /// (names outside the allowlist, or content nothing could vouch for), ERROR (could not be
    /// read completely, or not within the time or memory budget), or PENDING.
    async fn status(&self) -> InspectionStatus {
        self.status
    }

    /// How the file was cleared, when it was: a pickle whose every import is allowlisted, or
    /// a format that runs no code (safetensors, GGUF, ONNX, numpy, inert data…).
    async fn clearance(&self) -> Option<&str> {
        self.report.clearance.as_deref()
    }

    /// Which reader ran: `pickle`, `pytorch-zip`, `keras-zip`, `npz`, `numpy`, `hdf5`,
    /// `safetensors`, `gguf`, `onnx`, `compressed`, `data`, or `none`.
    async fn inspector(&self) -> &str {
        &self.report.inspector
    }

    /// Every import found in the file's pickles, with its severity and the reason.
    async fn findings(&self) -> Vec<InspectionFinding> {
        self.report
            .findings
            .iter()
            .map(|f| InspectionFinding {
                module: f.module.clone(),
                name: f.name.clone(),
                severity: FindingSeverity::from(f.severity),
                reason: f.reason.clone(),
            })
            .collect()
    }

    /// Why the file could not be read completely.
    async fn error(&self) -> Option<&str> {
        self.report.error.as_deref()
    }

    /// Parameters (tensor elements) declared by the file.
    async fn parameter_count(&self) -> Option<BigInt> {
        self.report.parameter_count.map(|n| BigInt(n as i64))
    }

    /// Tensors (or tensor storages) in the file.
    async fn tensor_count(&self) -> Option<BigInt> {
        self.report.tensor_count.map(|n| BigInt(n as i64))
    }

    /// Element types of the tensors, e.g. `F32`, `BF16`, `Q4_K`.
    async fn dtypes(&self) -> &[String] {
        &self.report.dtypes
    }

    /// The class of the pickled object, e.g. `sklearn.ensemble._forest.RandomForestClassifier`.
    async fn estimator_class(&self) -> Option<&str> {
        self.report.estimator_class.as_deref()
    }

    /// The scikit-learn version recorded in the pickle.
    async fn sklearn_version(&self) -> Option<&str> {
        self.report.sklearn_version.as_deref()
    }

    /// Graph inputs (ONNX).
    async fn inputs(&self) -> Vec<TensorInfo> {
        tensors(&self.report.inputs)
    }

    /// Graph outputs (ONNX).
    async fn outputs(&self) -> Vec<TensorInfo> {
        tensors(&self.report.outputs)
    }

    /// Frameworks the file points to.
    async fn framework_hints(&self) -> &[String] {
        &self.report.framework_hints
    }

    /// Everything else the format's header carries, as JSON.
    async fn metadata(&self) -> Json<Value> {
        Json(self.report.metadata.clone())
    }
}
