//! Running models in GraphQL: `predict`.

use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};

use super::{RequestContext, models::ModelVersion, scalars::parse_id};
use crate::services::inference::{self, Prediction, tensors::Output};

/// What a run of a model answered.
pub struct PredictionResult(Prediction);

#[Object(name = "Prediction")]
impl PredictionResult {
    /// The version that ran.
    async fn version(&self) -> ModelVersion {
        ModelVersion(self.0.version.clone())
    }

    /// The model file that ran.
    async fn path(&self) -> &str {
        &self.0.path
    }

    /// The model's outputs, in its order.
    async fn outputs(&self) -> Vec<PredictionOutput> {
        self.0.outputs.iter().map(PredictionOutput::from).collect()
    }

    /// How long the call took, waiting for a slot and loading the model included.
    async fn duration_ms(&self) -> f64 {
        self.0.took.as_secs_f64() * 1000.0
    }
}

/// One output of a run.
#[derive(SimpleObject)]
pub struct PredictionOutput {
    name: String,
    /// Its element type, as ONNX names it (`FLOAT`, `INT64`, `STRING`, …).
    #[graphql(name = "type")]
    dtype: String,
    shape: Vec<u64>,
    /// Its values as nested arrays, by its shape (`null` for a float that is not a number).
    values: Json<serde_json::Value>,
}

impl From<&Output> for PredictionOutput {
    fn from(output: &Output) -> Self {
        Self {
            name: output.name.clone(),
            dtype: output.dtype.to_owned(),
            shape: output.shape.iter().map(|&d| d as u64).collect(),
            values: Json(output.values.clone()),
        }
    }
}

/// Model runs.
#[derive(Default)]
pub struct InferenceMutation;

#[Object]
impl InferenceMutation {
    /// Runs a released ONNX version on `inputs`: an object of the model's input names to
    /// nested arrays of their declared shape and type (e.g. `{ "X": [[0.1, 2.3, …]] }`).
    /// `path` names the ONNX file in a version of several. Anyone who may download the
    /// version may run it; held versions never run. Limited per caller, in rows and values,
    /// and in time (`TIMEOUT`).
    async fn predict(
        &self,
        ctx: &Context<'_>,
        version_id: ID,
        inputs: Json<serde_json::Value>,
        path: Option<String>,
    ) -> Result<PredictionResult> {
        let id = parse_id("versionId", &version_id)?;
        let prediction = inference::predict(
            ctx.state(),
            ctx.viewer(),
            ctx.client_ip(),
            id,
            path.as_deref(),
            &inputs.0,
        )
        .await?;
        Ok(PredictionResult(prediction))
    }
}
