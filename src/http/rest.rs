//! The seed's REST paths, for scripts written against its examples: `POST /api/v1/models/`
//! (a multipart form with the seed's field names, the file last), `GET /api/v1/models/` (the
//! models the caller may see, with their versions; pages by `limit` and a `Link: rel="next"`
//! cursor), `GET /api/v1/models/{id}`, `POST /api/v1/models/{id}/predict` (runs the model)
//! and `GET /api/v1/admin/analytics/dashboard`. Thin
//! adapters over the services GraphQL uses, with the same authentication and policy; errors
//! take the hub's JSON form (`{"error": {"code", "message"}}`) with the matching status.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{ConnectInfo, Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sea_orm::ActiveEnum;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{HttpState, client_ip, graphql::bearer_token, multipart};
use crate::{
    auth::Viewer,
    domain::format,
    entities::{model, model_version},
    error::{AppError, AppResult},
    graphql::UploadedFile,
    services::{
        accounts, admin, downloads, hub, inference,
        lineage::Lineage,
        models::{self, ModelFilter, ModelSortField, SortDirection},
        pagination::Cursor,
        version_upload::Files,
        versions::{self, NewModel, NewVersion, UploadTarget},
    },
    storage::BlobStore,
};

/// Largest text field of the upload form.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most models on a page of `GET /api/v1/models/`, and the default.
const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 20;
const MIB: f64 = 1024.0 * 1024.0;

fn bad(field: &str, message: impl Into<String>) -> AppError {
    AppError::bad_input(field, message)
}

/// `POST /api/v1/models/`: a new model with its first version, from the seed's form. The
/// caller is authorized, and every text field checked, before a byte of `model_file` is read.
pub async fn create(State(state): State<HttpState>, request: Request) -> Response {
    // The caller and the form, before the file is stored; a refusal here closes the
    // connection rather than read the rest of the body.
    let read = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(request.headers())).await?;
        versions::authorize_upload(&state.app, &viewer, &[UploadTarget::NewModel]).await?;
        let (new, file) = read_form(&state, request).await?;
        Ok::<_, AppError>((viewer, new, file))
    };
    let (viewer, new, file) = match read.await {
        Ok(read) => read,
        Err(err) => return super::closing(err.into_response()),
    };
    let result: AppResult<Response> = async {
        let created =
            versions::create_model(&state.app, &viewer, new, Files::One(file.clone())).await;
        state.app.blobs.discard(&file.blob).await;
        let model = created?;
        let location = format!("/api/v1/models/{}", model.id);
        let body = models_json(&state, &viewer, vec![model]).await?.remove(0);
        let mut response = (StatusCode::CREATED, Json(body)).into_response();
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The form's text fields.
const TEXT_FIELDS: &[&str] = &[
    "name",
    "description",
    "framework",
    "version",
    "format",
    "task_type",
    "tags",
    "license",
    "changelog",
    "metadata",
    "performance_metrics",
];

/// Reads the seed's form: its text fields, checked as soon as `model_file` starts, then the
/// file, staged. A field after the file, an unknown or repeated field, or no file is refused;
/// on any error nothing stays staged.
async fn read_form(state: &HttpState, request: Request) -> AppResult<(NewModel, UploadedFile)> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = multer::parse_boundary(&content_type).map_err(|_| {
        bad(
            "multipart",
            "send a multipart/form-data body (curl -F …) with the model in `model_file`",
        )
    })?;
    let max_file_bytes = state.app.config.max_upload_bytes;
    let limits = multer::SizeLimit::new().per_field(max_file_bytes.saturating_add(1));
    let mut form = multer::Multipart::with_constraints(
        request.into_body().into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let error = |e| multipart::multer_error(e, max_file_bytes);
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut read: Option<(NewModel, UploadedFile)> = None;
    let outcome: AppResult<()> = async {
        while let Some(mut field) = form.next_field().await.map_err(error)? {
            let name = field.name().unwrap_or_default().to_owned();
            if read.is_some() {
                return Err(bad(
                    &name,
                    "comes after `model_file`; send the file as the form's last part",
                ));
            }
            if name == "model_file" {
                let new = to_new_model(&fields)?;
                let file = multipart::stage_part(&state.app, &mut field, max_file_bytes).await?;
                read = Some((new, file));
                continue;
            }
            if !TEXT_FIELDS.contains(&name.as_str()) {
                return Err(bad(
                    &name,
                    format!(
                        "is not a field of this form ({}, model_file)",
                        TEXT_FIELDS.join(", ")
                    ),
                ));
            }
            if fields.contains_key(&name) {
                return Err(bad(&name, "is repeated"));
            }
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(error)? {
                if text.len() + chunk.len() > MAX_FIELD_BYTES {
                    return Err(bad(
                        &name,
                        format!("is longer than {MAX_FIELD_BYTES} bytes"),
                    ));
                }
                text.extend_from_slice(&chunk);
            }
            let text =
                String::from_utf8(text).map_err(|_| bad(&name, "is not valid UTF-8 text"))?;
            fields.insert(name, text);
        }
        Ok(())
    }
    .await;
    match (outcome, read) {
        (Ok(()), Some(read)) => Ok(read),
        (Ok(()), None) => {
            to_new_model(&fields)?;
            Err(bad("model_file", "is missing: attach the model file"))
        }
        (Err(err), staged) => {
            if let Some((_, file)) = staged {
                state.app.blobs.discard(&file.blob).await;
            }
            Err(err)
        }
    }
}

/// The new model a form describes; the services check the values themselves.
fn to_new_model(fields: &HashMap<String, String>) -> AppResult<NewModel> {
    let text = |name: &str| {
        fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let required = |name: &str| text(name).ok_or_else(|| bad(name, "is required"));
    let object = |name: &str| -> AppResult<Option<Value>> {
        text(name)
            .map(|raw| {
                serde_json::from_str::<Value>(&raw)
                    .map_err(|e| bad(name, format!("is not valid JSON: {e}")))
            })
            .transpose()
    };
    let format = text("format")
        .map(|raw| {
            format::from_name(&raw).ok_or_else(|| {
                bad(
                    "format",
                    format!("`{raw}` is not a format (joblib, pkl, h5, keras, pth, safetensors, onnx, gguf, other)"),
                )
            })
        })
        .transpose()?;
    Ok(NewModel {
        name: required("name")?,
        description: text("description"),
        framework: required("framework")?,
        task_type: text("task_type"),
        tags: text("tags")
            .map(|raw| tags(&raw))
            .transpose()?
            .unwrap_or_default(),
        license: text("license"),
        lineage: Lineage::default(),
        version: NewVersion {
            version: text("version").unwrap_or_else(|| "v1.0.0".to_owned()),
            format,
            changelog: text("changelog"),
            metadata: object("metadata")?,
            performance_metrics: object("performance_metrics")?,
        },
    })
}

/// Tags as the seed sends them (a JSON array of strings), or separated by commas.
fn tags(raw: &str) -> AppResult<Vec<String>> {
    if raw.starts_with('[') {
        return serde_json::from_str(raw).map_err(|_| {
            bad(
                "tags",
                "must be a JSON array of strings or a comma-separated list",
            )
        });
    }
    Ok(raw
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Query parameters of `GET /api/v1/models/`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// Models per page (at most 100).
    limit: Option<usize>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
    search: Option<String>,
    framework: Option<String>,
    task_type: Option<String>,
    /// `created_at` (the default), `updated_at`, `downloads` or `name`.
    sort: Option<String>,
    /// `desc` (the default) or `asc`.
    order: Option<String>,
}

/// `GET /api/v1/models/`: a page of the models the caller may see, each with its versions
/// (a JSON array, as in the seed); `Link: <…>; rel="next"` while more follow. Three
/// statements whatever the page's size.
pub async fn list(
    State(state): State<HttpState>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Response {
    let result: AppResult<Response> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let field = match params.sort.as_deref() {
            None | Some("created_at") => ModelSortField::CreatedAt,
            Some("updated_at") => ModelSortField::UpdatedAt,
            Some("downloads") => ModelSortField::Downloads,
            Some("name") => ModelSortField::Name,
            Some(other) => {
                return Err(bad(
                    "sort",
                    format!("`{other}` is not a sort (created_at, updated_at, downloads, name)"),
                ));
            }
        };
        let direction = match params.order.as_deref() {
            None | Some("desc") => SortDirection::Desc,
            Some("asc") => SortDirection::Asc,
            Some(other) => return Err(bad("order", format!("`{other}` is not asc or desc"))),
        };
        let size = match params.limit {
            None => DEFAULT_PAGE,
            Some(n @ 1..=MAX_PAGE) => n,
            Some(_) => return Err(bad("limit", format!("must be from 1 to {MAX_PAGE}"))),
        };
        let after = params
            .cursor
            .as_deref()
            .map(|c| Cursor::decode("cursor", c))
            .transpose()?;
        let filter = ModelFilter {
            search: params.search.clone(),
            framework: params.framework.clone(),
            task_type: params.task_type.clone(),
            ..ModelFilter::default()
        };
        let page = models::list(
            &state.app,
            &viewer,
            &filter,
            (field, direction),
            size,
            after,
            false,
        )
        .await?;
        let next = page
            .has_next
            .then(|| page.items.last().map(|(cursor, _)| cursor.encode()))
            .flatten();
        let rows = page.items.into_iter().map(|(_, m)| m).collect();
        let mut response = Json(models_json(&state, &viewer, rows).await?).into_response();
        if let Some(cursor) = next {
            let mut url = state.app.config.public_url.clone();
            url.set_path("/api/v1/models/");
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", &size.to_string());
                query.append_pair("cursor", &cursor);
                for (key, value) in [
                    ("search", &params.search),
                    ("framework", &params.framework),
                    ("task_type", &params.task_type),
                    ("sort", &params.sort),
                    ("order", &params.order),
                ] {
                    if let Some(value) = value {
                        query.append_pair(key, value);
                    }
                }
            }
            if let Ok(link) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
                response.headers_mut().insert(header::LINK, link);
            }
        }
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/models/{id}`: one model with its versions; 404 to anyone who may not see it.
pub async fn show(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result: AppResult<Response> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound("model"))?;
        let model = models::find(&state.app, &viewer, id)
            .await?
            .ok_or(AppError::NotFound("model"))?;
        let body = models_json(&state, &viewer, vec![model]).await?.remove(0);
        Ok(Json(body).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Models in the seed's shape, with their owners' names and their versions (two statements
/// for any number of models).
async fn models_json(
    state: &HttpState,
    viewer: &Viewer,
    rows: Vec<model::Model>,
) -> AppResult<Vec<Value>> {
    let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
    let mut versions = versions::of_models(&state.app.db, &ids).await?;
    let owners = hub::logins(&state.app, rows.iter().map(|m| m.owner_id)).await?;
    rows.into_iter()
        .map(|m| {
            let versions = versions.remove(&m.id).unwrap_or_default();
            let current = m
                .current_version_id
                .and_then(|id| versions.iter().find(|v| v.id == id))
                .map(|v| v.version.clone());
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| version_json(state, viewer, v))
                .collect::<AppResult<_>>()?;
            Ok(json!({
                "id": m.id,
                "name": m.name,
                "description": m.description,
                "framework": m.framework,
                "task_type": m.task_type,
                "tags": m.tags,
                "license": m.license,
                "owner_id": m.owner_id,
                "owner": owners.get(&m.owner_id),
                "current_version": current,
                "downloads": m.downloads,
                "visibility": m.visibility.to_value(),
                "approval_status": m.approval_status.to_value(),
                "created_at": m.created_at,
                "updated_at": m.updated_at,
                "versions": versions,
            }))
        })
        .collect()
}

/// A version in the seed's shape (`s3_path` is where its bytes are stored: the content
/// address of a one-file version's file), with its hash, inspection and a signed link.
fn version_json(state: &HttpState, viewer: &Viewer, v: &model_version::Model) -> AppResult<Value> {
    Ok(json!({
        "id": v.id,
        "model_id": v.model_id,
        "version": v.version,
        "s3_path": (v.file_count == 1).then(|| BlobStore::blob_path(&v.sha256).to_string()),
        "size_mb": v.size_bytes as f64 / MIB,
        "size_bytes": v.size_bytes,
        "format": format::file_extension(v.format),
        "file_count": v.file_count,
        "sha256": v.sha256,
        "digest": v.digest,
        "changelog": v.changelog,
        "model_metadata": v.metadata,
        "performance_metrics": v.performance_metrics,
        "inspection_status": v.inspection_status.to_value(),
        "downloads": v.downloads,
        "download_url": downloads::signed_url(&state.app, v.id, None, viewer)?,
        "created_at": v.created_at,
    }))
}

/// `GET /api/v1/admin/analytics/dashboard`: the admin dashboard's figures (administrators
/// with the ADMIN scope), as one JSON object.
pub async fn dashboard(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let result: AppResult<Response> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let admin = viewer.require_admin()?;
        let d = admin::dashboard(&state.app, admin).await?;
        let by_status: serde_json::Map<String, Value> = d
            .models_by_status
            .iter()
            .map(|(status, n)| (status.to_value(), json!(n)))
            .collect();
        let pending = by_status.get("pending").cloned().unwrap_or(json!(0));
        let by_inspection: serde_json::Map<String, Value> = d
            .versions_by_inspection
            .iter()
            .map(|(status, n)| (status.to_value(), json!(n)))
            .collect();
        let days = |series: &[admin::DayCount]| -> Vec<Value> {
            series
                .iter()
                .map(|d| json!({ "date": d.day, "count": d.count }))
                .collect()
        };
        let top = |models: &[(model::Model, i64)]| -> Vec<Value> {
            models
                .iter()
                .map(|(m, n)| json!({ "id": m.id, "name": m.name, "downloads": n }))
                .collect()
        };
        let breakdown = |key: &str, rows: &[admin::Breakdown]| -> Vec<Value> {
            rows.iter()
                .map(|b| json!({ key: b.key, "models": b.models, "versions": b.versions, "bytes": b.bytes }))
                .collect()
        };
        Ok(Json(json!({
            "total_users": d.users,
            "total_admins": d.administrators,
            "disabled_users": d.disabled_users,
            "total_models": d.models,
            "total_versions": d.versions,
            "pending_approvals": pending,
            "models_by_status": by_status,
            "versions_by_inspection": by_inspection,
            "total_downloads": d.downloads_total,
            "storage_used_bytes": d.bytes_stored,
            "storage_used_mb": d.bytes_stored as f64 / MIB,
            "storage_referenced_bytes": d.bytes_referenced,
            "downloads_per_day": days(&d.downloads_per_day),
            "uploads_per_day": days(&d.uploads_per_day),
            "top_models_7_days": top(&d.top_models_7_days),
            "top_models_30_days": top(&d.top_models_30_days),
            "storage_by_framework": breakdown("framework", &d.by_framework),
            "storage_by_format": breakdown("format", &d.by_format),
            "newest_users": d.newest_users.iter().map(|u| json!({
                "id": u.id, "username": u.username, "created_at": u.created_at,
            })).collect::<Vec<_>>(),
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The body of `POST /api/v1/models/{id}/predict`.
#[derive(Deserialize)]
pub struct PredictBody {
    /// The model's input names to nested arrays.
    inputs: Value,
    /// The version to run (a version string, an alias or a commit id); the current one when
    /// left out.
    version: Option<String>,
    /// The ONNX file to run, in a version of several.
    path: Option<String>,
}

/// `POST /api/v1/models/{id}/predict`: runs the model's current version (or `version`) on
/// `inputs`, as the `predict` mutation does; answers the outputs in the same form.
pub async fn predict(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<PredictBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let result: AppResult<Response> = async {
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let Json(body) = body.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge {
                limit: state.app.config.max_request_bytes as u64,
            },
            _ => bad("body", e.body_text()),
        })?;
        let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound("model"))?;
        let model = models::find(&state.app, &viewer, id)
            .await?
            .ok_or(AppError::NotFound("model"))?;
        let revision = body.version.as_deref().unwrap_or("main");
        let version_id = hub::revision(&state.app, &model, revision)
            .await
            .map_err(|e| match e {
                AppError::NotFound(_) => AppError::NotFound("model version"),
                other => other,
            })?
            .id;
        let client = client_ip::resolve(
            Some(peer.ip()),
            &headers,
            &state.app.config.trusted_proxies,
        );
        let ran = inference::predict(
            &state.app,
            &viewer,
            client,
            version_id,
            body.path.as_deref(),
            &body.inputs,
        )
        .await?;
        let outputs: Vec<Value> = ran
            .outputs
            .iter()
            .map(|o| json!({ "name": o.name, "type": o.dtype, "shape": o.shape, "values": o.values }))
            .collect();
        Ok(Json(json!({
            "model_id": model.id,
            "version_id": ran.version.id,
            "version": ran.version.version,
            "path": ran.path,
            "outputs": outputs,
            "duration_ms": ran.took.as_secs_f64() * 1000.0,
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
