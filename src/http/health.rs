//! Liveness and readiness probes.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::HttpState;

/// `GET /healthz`: the process is up.
pub async fn live() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database and the blob store answer; 503 otherwise.
pub async fn ready(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let database = state.app.db.ping().await;
    let storage = state.app.blobs.check().await;
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: database unavailable");
    }
    if let Err(e) = &storage {
        tracing::warn!(error = %e, "readiness: blob store unavailable");
    }
    let status = |ok: bool| if ok { "ok" } else { "unavailable" };
    let code = if database.is_ok() && storage.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({ "database": status(database.is_ok()), "storage": status(storage.is_ok()) })),
    )
}
