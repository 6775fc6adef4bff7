//! A version's inspection report in GraphQL.

use async_graphql::{Json, Object};
use serde_json::Value;

use super::scalars::BigInt;
use crate::{
    entities::{enums::InspectionStatus, model_version},
    inspection::{Finding, Report, onnx::TensorSpec},
};

/// What the static inspection of a version's file found. The file is never loaded or run.
pub struct Inspection {
    status: InspectionStatus,
    report: Report,
}

impl Inspection {
    /// The inspection of a stored version.
    pub fn of(version: &model_version::Model) -> Self {
        Self {
            status: version.inspection_status,
            report: version
                .inspection
                .clone()
                .and_then(|json| serde_json::from_value(json).ok())
                .unwrap_or_default(),
        }
    }
}

#[Object]
impl Inspection {
    /// SAFE, UNSAFE (runs code when loaded), UNKNOWN (imports outside the allowlist, or a
    /// format no reader understands), ERROR (malformed or unreadable), or PENDING.
    async fn status(&self) -> InspectionStatus {
        self.status
    }

    /// Which reader ran: `pickle`, `pytorch-zip`, `keras-zip`, `hdf5`, `safetensors`, `gguf`,
    /// `onnx`, or `none`.
    async fn inspector(&self) -> &str {
        &self.report.inspector
    }

    /// Every import found in the file's pickles, with its severity and the reason.
    async fn findings(&self) -> &[Finding] {
        &self.report.findings
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
    async fn inputs(&self) -> &[TensorSpec] {
        &self.report.inputs
    }

    /// Graph outputs (ONNX).
    async fn outputs(&self) -> &[TensorSpec] {
        &self.report.outputs
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
