//! `/uploads/`: resumable uploads over the tus 1.0 protocol (core, creation, termination,
//! checksum with sha256, expiration), for any tus client (`tuspy`, `tus-js-client`, Uppy).
//! Every request but `OPTIONS` carries `Tus-Resumable: 1.0.0` and the caller's bearer token;
//! the upload is the caller's alone. A finished upload goes into a version or draft by its id
//! (`FileUpload.uploadId`). See [`crate::services::resumable`].

use axum::{
    Router,
    body::Body,
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{head, post},
};
use base64::Engine;
use uuid::Uuid;

use super::{HttpState, graphql::bearer_token};
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
    services::{
        accounts,
        resumable::{self, Appended},
    },
};

const VERSION: &str = "1.0.0";
const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
/// The status tus gives a request whose body does not match its `Upload-Checksum`.
const CHECKSUM_MISMATCH: u16 = 460;

/// The routes, for [`super::router`]. `OPTIONS` is answered by [`capabilities`], outside the
/// CORS layer (which answers every `OPTIONS` as a preflight).
pub fn routes() -> Router<HttpState> {
    Router::new().route("/uploads", post(create)).route(
        "/uploads/{id}",
        head(offset).patch(append).delete(terminate),
    )
}

/// The headers tus requests and answers carry, for the CORS layer.
pub const REQUEST_HEADERS: [HeaderName; 5] = [
    TUS_RESUMABLE,
    UPLOAD_OFFSET,
    UPLOAD_LENGTH,
    HeaderName::from_static("upload-metadata"),
    HeaderName::from_static("upload-checksum"),
];
pub const ANSWER_HEADERS: [HeaderName; 7] = [
    TUS_RESUMABLE,
    UPLOAD_OFFSET,
    UPLOAD_LENGTH,
    UPLOAD_EXPIRES,
    HeaderName::from_static("tus-version"),
    HeaderName::from_static("tus-extension"),
    HeaderName::from_static("tus-max-size"),
];

/// An answer with `Tus-Resumable`.
fn answer(status: StatusCode, headers: &[(HeaderName, String)]) -> Response {
    let mut response = status.into_response();
    let out = response.headers_mut();
    out.insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(name.clone(), value);
        }
    }
    response
}

/// An error as tus clients read it: the status (and our JSON body, with its code).
fn failed(error: AppError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    response
}

/// The caller of a tus request: refused with 412 (naming our version) for another protocol
/// version, then authenticated by its bearer token.
struct Caller(Viewer);

impl FromRequestParts<HttpState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Response> {
        if parts
            .headers
            .get(&TUS_RESUMABLE)
            .and_then(|v| v.to_str().ok())
            != Some(VERSION)
        {
            return Err(answer(
                StatusCode::PRECONDITION_FAILED,
                &[(HeaderName::from_static("tus-version"), VERSION.into())],
            ));
        }
        accounts::authenticate(&state.app, bearer_token(&parts.headers))
            .await
            .map(Caller)
            .map_err(failed)
    }
}

/// A number header, required.
fn number(headers: &HeaderMap, name: &HeaderName) -> AppResult<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            AppError::bad_input(name.as_str(), "a non-negative whole number is required")
        })
}

/// `Upload-Expires`, as an HTTP date.
fn expires(at: chrono::DateTime<chrono::Utc>) -> (HeaderName, String) {
    (
        UPLOAD_EXPIRES,
        at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    )
}

fn upload_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound("upload"))
}

/// `OPTIONS /uploads…` that is not a browser's CORS preflight: what this server supports
/// (`max_size`: the largest upload). Every other request goes on.
pub async fn capabilities(
    State(max_size): State<u64>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let is_tus_discovery = request.method() == axum::http::Method::OPTIONS
        && request.uri().path().starts_with("/uploads")
        && !request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !is_tus_discovery {
        return next.run(request).await;
    }
    answer(
        StatusCode::NO_CONTENT,
        &[
            (HeaderName::from_static("tus-version"), VERSION.into()),
            (
                HeaderName::from_static("tus-extension"),
                "creation,termination,checksum,expiration".into(),
            ),
            (
                HeaderName::from_static("tus-max-size"),
                max_size.to_string(),
            ),
            (
                HeaderName::from_static("tus-checksum-algorithm"),
                "sha256".into(),
            ),
        ],
    )
}

/// The `filename` of an `Upload-Metadata` header (`key base64,key base64`).
fn filename(headers: &HeaderMap) -> Option<String> {
    let metadata = headers.get("upload-metadata")?.to_str().ok()?;
    metadata.split(',').find_map(|pair| {
        let (key, value) = pair.trim().split_once(' ')?;
        (key == "filename")
            .then(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
            })
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    })
}

/// `POST /uploads`: a new upload of `Upload-Length` bytes (`Upload-Defer-Length` is not
/// offered); answered `201` with its `Location`.
async fn create(
    State(state): State<HttpState>,
    Caller(viewer): Caller,
    headers: HeaderMap,
) -> Response {
    let result: AppResult<Response> = async {
        let length = number(&headers, &UPLOAD_LENGTH)?;
        let row = resumable::create(&state.app, &viewer, length, filename(&headers)).await?;
        let location = state
            .app
            .config
            .public_url
            .join(&format!("uploads/{}", row.id))
            .map_err(AppError::internal)?;
        Ok(answer(
            StatusCode::CREATED,
            &[
                (header::LOCATION, location.to_string()),
                (UPLOAD_OFFSET, row.offset.to_string()),
                expires(row.expires_at),
            ],
        ))
    }
    .await;
    result.unwrap_or_else(failed)
}

/// `HEAD /uploads/{id}`: how far the upload has come.
async fn offset(
    State(state): State<HttpState>,
    Caller(viewer): Caller,
    Path(id): Path<String>,
) -> Response {
    let result: AppResult<Response> = async {
        let row = resumable::find(&state.app, &viewer, upload_id(&id)?).await?;
        Ok(answer(
            StatusCode::OK,
            &[
                (UPLOAD_OFFSET, row.offset.to_string()),
                (UPLOAD_LENGTH, row.length.to_string()),
                (header::CACHE_CONTROL, "no-store".into()),
                expires(row.expires_at),
            ],
        ))
    }
    .await;
    result.unwrap_or_else(failed)
}

/// The SHA-256 an `Upload-Checksum: sha256 <base64>` names, as lower-case hex.
fn checksum(headers: &HeaderMap) -> AppResult<Option<String>> {
    let Some(value) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    let bad = || AppError::bad_input("Upload-Checksum", "expected `sha256 <base64 digest>`");
    let (algorithm, digest) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .ok_or_else(bad)?;
    if algorithm != "sha256" {
        return Err(AppError::bad_input(
            "Upload-Checksum",
            format!("`{algorithm}` is not offered: use sha256"),
        ));
    }
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .ok()
        .filter(|d| d.len() == 32)
        .ok_or_else(bad)?;
    Ok(Some(digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// `PATCH /uploads/{id}`: bytes from `Upload-Offset`; answered `204` with the new offset. The
/// caller, the upload and the offset are checked before a byte of the body is read.
async fn append(
    State(state): State<HttpState>,
    Caller(viewer): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result: AppResult<Response> = async {
        if headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            != Some("application/offset+octet-stream")
        {
            return Ok(answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, &[]));
        }
        let id = upload_id(&id)?;
        let at = number(&headers, &UPLOAD_OFFSET)?;
        let checksum = checksum(&headers)?;
        let appended = resumable::append(
            &state.app,
            &viewer,
            id,
            at,
            checksum,
            body.into_data_stream(),
        )
        .await?;
        Ok(match appended {
            Appended::At { offset, expires_at } => answer(
                StatusCode::NO_CONTENT,
                &[(UPLOAD_OFFSET, offset.to_string()), expires(expires_at)],
            ),
            Appended::ChecksumMismatch { offset } => answer(
                StatusCode::from_u16(CHECKSUM_MISMATCH).map_err(AppError::internal)?,
                &[(UPLOAD_OFFSET, offset.to_string())],
            ),
        })
    }
    .await;
    result.unwrap_or_else(failed)
}

/// `DELETE /uploads/{id}`: the upload ends and its bytes go.
async fn terminate(
    State(state): State<HttpState>,
    Caller(viewer): Caller,
    Path(id): Path<String>,
) -> Response {
    let result: AppResult<Response> = async {
        resumable::terminate(&state.app, &viewer, upload_id(&id)?).await?;
        Ok(answer(StatusCode::NO_CONTENT, &[]))
    }
    .await;
    result.unwrap_or_else(failed)
}
