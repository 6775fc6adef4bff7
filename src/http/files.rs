//! `GET /files/{versionId}`, `GET /files/{versionId}/{path}` and
//! `GET /api/v1/models/{modelId}/download`: a version's file (or one file of a version of
//! several), streamed from the blob store, with `ETag`, `Range` and `If-None-Match`. With
//! `MODELHUB_S3_PRESIGNED_DOWNLOADS`, a `GET` of one file is answered by a redirect to a
//! short-lived presigned URL of its object instead (after the same checks, and counted the
//! same way); a `HEAD` is still answered here, and a tar is always built here.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{HttpState, client_ip, graphql::bearer_token};
use crate::{
    auth::Viewer,
    domain::format,
    entities::version_file,
    error::{AppError, AppResult},
    services::{
        accounts,
        downloads::{self, AcceptRisk, Credentials, Grant},
        hub,
    },
    storage::{
        StorageError,
        tar::{self, Tarball},
    },
};

/// Query parameters of the download routes.
#[derive(Debug, Deserialize)]
pub struct DownloadParams {
    /// A signed token from `ModelVersion.downloadUrl`.
    token: Option<String>,
    /// Download a file found UNSAFE anyway.
    #[serde(default, rename = "acceptRisk")]
    accept_risk: bool,
    /// `tar`: the whole version as one archive.
    format: Option<String>,
}

/// How long a presigned download link is valid: long enough to start the transfer (a client
/// that resumes later asks the hub again and gets a new link).
const PRESIGNED_TTL: std::time::Duration = std::time::Duration::from_secs(300);

fn parse_uuid(raw: &str, what: &'static str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound(what))
}

/// `GET /files/{versionId}`: a one-file version's file, or (`?format=tar`) the whole version.
pub async fn by_version(
    State(state): State<HttpState>,
    Path(version_id): Path<String>,
    Query(params): Query<DownloadParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let request = Request::new(&state, params, peer, method, headers);
    request
        .whole_version(&version_id)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /files/{versionId}/{path}`: one file of a version, by its path; and
/// `GET /files/{owner}/{slug}@{revision}[/{path}]`: the same of the version of model
/// `owner/slug` that the revision names, as on the Hugging Face routes (`main`, a version
/// string, an alias or a commit id; e.g. `…/bert@production/config.json`).
pub async fn by_file(
    State(state): State<HttpState>,
    Path((first, rest)): Path<(String, String)>,
    Query(params): Query<DownloadParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let request = Request::new(&state, params, peer, method, headers);
    let result: AppResult<Response> = async {
        if Uuid::parse_str(&first).is_ok() {
            return request.one_file(&first, &rest).await;
        }
        let (named, path) = match rest.split_once('/') {
            Some((named, path)) => (named, Some(path)),
            None => (rest.as_str(), None),
        };
        let (name, reference) = named
            .rsplit_once('@')
            .ok_or(AppError::NotFound("model version"))?;
        let viewer = request.viewer().await?;
        let found = async {
            let model = hub::repository(&state.app, viewer, &first, name).await?;
            hub::revision(&state.app, &model, reference).await
        }
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("model version"),
            other => other,
        })?;
        let version = found.id.to_string();
        match path {
            Some(path) => request.one_file(&version, path).await,
            None => request.whole_version(&version).await,
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A download request, as the routes received it.
struct Request<'s> {
    state: &'s HttpState,
    params: DownloadParams,
    method: Method,
    headers: HeaderMap,
    client: Option<std::net::IpAddr>,
    /// The caller by its bearer token, once asked for.
    viewer: tokio::sync::OnceCell<Viewer>,
}

impl<'s> Request<'s> {
    fn new(
        state: &'s HttpState,
        params: DownloadParams,
        peer: SocketAddr,
        method: Method,
        headers: HeaderMap,
    ) -> Self {
        let client =
            client_ip::resolve(Some(peer.ip()), &headers, &state.app.config.trusted_proxies);
        Self {
            state,
            params,
            method,
            headers,
            client,
            viewer: tokio::sync::OnceCell::new(),
        }
    }

    /// The caller its bearer token names (resolved once per request).
    async fn viewer(&self) -> AppResult<&Viewer> {
        self.viewer
            .get_or_try_init(|| {
                accounts::authenticate(&self.state.app, bearer_token(&self.headers))
            })
            .await
    }

    /// The right to download version `version_id` (its file at `path`, or all of it), by its
    /// signed link or the caller's token.
    async fn grant(&self, version_id: &str, path: Option<&str>) -> AppResult<Grant> {
        let version_id = parse_uuid(version_id, "model version")?;
        match self.params.token.as_deref() {
            Some(token) => {
                let link = Credentials::SignedLink { token, path };
                downloads::authorize_version(&self.state.app, link, version_id).await
            }
            None => {
                let viewer = Credentials::Viewer(self.viewer().await?);
                downloads::authorize_version(&self.state.app, viewer, version_id).await
            }
        }
    }

    /// The version `version_id` whole: its one file, or a tar of all.
    async fn whole_version(&self, version_id: &str) -> AppResult<Response> {
        let (state, params) = (self.state, &self.params);
        let grant = self.grant(version_id, None).await?;
        downloads::ensure_risk_accepted(&state.app, &grant, AcceptRisk(params.accept_risk))?;
        let served = match params.format.as_deref() {
            None => Served::version(&grant)?,
            Some("tar") => Served::tar(state, &grant).await?,
            Some(other) => {
                return Err(AppError::bad_input(
                    "format",
                    format!("`{other}` is not a download format (only `tar`)"),
                ));
            }
        };
        serve(
            state,
            &grant,
            served,
            &self.method,
            &self.headers,
            self.client,
        )
        .await
    }

    /// The file at `path` of version `version_id`.
    async fn one_file(&self, version_id: &str, path: &str) -> AppResult<Response> {
        let (state, params) = (self.state, &self.params);
        let grant = self.grant(version_id, Some(path)).await?;
        let file = downloads::file_of(&state.app, &grant, path).await?;
        downloads::ensure_file_risk_accepted(
            &state.app,
            &grant,
            &file,
            AcceptRisk(params.accept_risk),
        )?;
        let served = Served::file(&file)?;
        serve(
            state,
            &grant,
            served,
            &self.method,
            &self.headers,
            self.client,
        )
        .await
    }
}

/// `GET /api/v1/models/{modelId}/download`: the model's current version.
pub async fn by_model(
    State(state): State<HttpState>,
    Path(model_id): Path<String>,
    Query(params): Query<DownloadParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let client = client_ip::resolve(Some(peer.ip()), &headers, &state.app.config.trusted_proxies);
    let result: AppResult<Response> = async {
        let model_id = parse_uuid(&model_id, "model")?;
        let viewer = accounts::authenticate(&state.app, bearer_token(&headers)).await?;
        let grant = downloads::authorize_current(&state.app, &viewer, model_id).await?;
        downloads::ensure_risk_accepted(&state.app, &grant, AcceptRisk(params.accept_risk))?;
        let served = Served::version(&grant)?;
        serve(&state, &grant, served, &method, &headers, client).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A requested byte range, resolved against the file size.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No (usable) range: the whole file.
    Full,
    /// Bytes `start..end` (end exclusive).
    Partial(u64, u64),
    /// A range that lies outside the file.
    Unsatisfiable,
}

/// Parses a single `bytes=` range; several ranges or other units are served whole.
fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = if start.is_empty() {
        // A suffix: the last N bytes.
        match end.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size)),
            Err(_) => None,
        }
    } else {
        match (start.parse::<u64>(), end) {
            (Ok(s), "") => Some((s, size)),
            (Ok(s), e) => match e.parse::<u64>() {
                Ok(e) if e >= s => Some((s, e.saturating_add(1).min(size))),
                _ => None,
            },
            _ => None,
        }
    };
    match parsed {
        None => RangeRequest::Full,
        Some((start, _)) if start >= size => RangeRequest::Unsatisfiable,
        Some((start, end)) => RangeRequest::Partial(start, end),
    }
}

/// Whether an `If-None-Match` header matches the entity tag.
fn etag_matches(header: Option<&HeaderValue>, etag: &str) -> bool {
    header.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
    })
}

/// A file name safe for `Content-Disposition`: the model's name and version, with anything but
/// letters, digits, `-`, `_` and `.` replaced.
fn download_filename(grant: &Grant) -> String {
    let stem = safe_filename(&format!("{}-{}", grant.model.name, grant.version.version));
    format!(
        "{}.{}",
        stem.trim_matches('.'),
        format::file_extension(grant.version.format)
    )
}

/// `name` with anything but letters, digits, `-`, `_` and `.` replaced.
fn safe_filename(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a download's bytes come from.
enum Source {
    /// One blob, by its SHA-256.
    Blob(String),
    /// A version's files as one archive.
    Tar(Arc<Tarball>),
}

/// What a download sends: its bytes, their size and entity tag, and the name and type they
/// are saved as.
pub(super) struct Served {
    source: Source,
    etag: String,
    size: u64,
    filename: String,
    content_type: &'static str,
}

impl Served {
    /// A one-file version's file, saved as `{model}-{version}.{extension}`.
    fn version(grant: &Grant) -> AppResult<Self> {
        let version = &grant.version;
        if version.file_count != 1 {
            return Err(AppError::Conflict(format!(
                "version {} has {} files: download each at /files/{}/{{path}}, or all of them with ?format=tar",
                version.version, version.file_count, version.id
            )));
        }
        Ok(Self {
            source: Source::Blob(version.sha256.clone()),
            etag: version.sha256.clone(),
            size: u64::try_from(version.size_bytes).map_err(AppError::internal)?,
            filename: download_filename(grant),
            content_type: "application/octet-stream",
        })
    }

    /// The whole version as one `tar` archive of its files (by path), tagged with its
    /// digest and saved as `{model}-{version}.tar`.
    async fn tar(state: &HttpState, grant: &Grant) -> AppResult<Self> {
        let files = downloads::files_of_version(&state.app, grant).await?;
        let entries = files
            .into_iter()
            .map(|f| {
                Ok(tar::Entry {
                    size: u64::try_from(f.size_bytes).map_err(AppError::internal)?,
                    path: f.path,
                    sha256: f.sha256,
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        let mtime = u64::try_from(grant.version.created_at.timestamp()).unwrap_or(0);
        let tarball = Tarball::new(entries, mtime);
        let stem = safe_filename(&format!("{}-{}", grant.model.name, grant.version.version));
        Ok(Self {
            size: tarball.len(),
            source: Source::Tar(Arc::new(tarball)),
            etag: grant.version.digest.clone(),
            filename: format!("{}.tar", stem.trim_matches('.')),
            content_type: "application/x-tar",
        })
    }

    /// One file of a version, saved under its own name.
    pub(super) fn file(file: &version_file::Model) -> AppResult<Self> {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        Ok(Self {
            source: Source::Blob(file.sha256.clone()),
            etag: file.sha256.clone(),
            size: u64::try_from(file.size_bytes).map_err(AppError::internal)?,
            filename: safe_filename(name),
            content_type: "application/octet-stream",
        })
    }
}

pub(super) async fn serve(
    state: &HttpState,
    grant: &Grant,
    served: Served,
    method: &Method,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> AppResult<Response> {
    let version = &grant.version;
    let size = served.size;
    let etag = format!("\"{}\"", served.etag);
    let filename = served.filename;
    let common = [
        (header::ETAG, etag.clone()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (header::CACHE_CONTROL, "private, no-cache".to_owned()),
    ];
    if etag_matches(headers.get(header::IF_NONE_MATCH), &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        insert_all(response.headers_mut(), &common)?;
        return Ok(response);
    }
    // A Range applies only if an If-Range (when sent) still names this content.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if if_range_ok => parse_range(value, size),
        _ => RangeRequest::Full,
    };
    let (status, start, end) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeRequest::Unsatisfiable => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}"))?,
            );
            return Ok(response);
        }
    };
    let disposition = format!("attachment; filename=\"{filename}\"");
    if method != Method::HEAD
        && let Source::Blob(sha256) = &served.source
        && let Some(location) = state
            .app
            .blobs
            .presigned_get(sha256, PRESIGNED_TTL, &disposition)
            .await
            .map_err(AppError::internal)?
    {
        if start == 0 {
            state.app.downloads.note(grant, client);
        }
        tracing::info!(version_id = %version.id, start, end, "download redirected to the store");
        let mut response = StatusCode::FOUND.into_response();
        let headers_out = response.headers_mut();
        insert_all(headers_out, &common)?;
        headers_out.insert(header::LOCATION, header_value(location.as_str())?);
        return Ok(response);
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let stream = match &served.source {
            Source::Blob(sha256) => {
                let range = (status == StatusCode::PARTIAL_CONTENT).then_some(start..end);
                state
                    .app
                    .blobs
                    .read(sha256, range)
                    .await
                    .map_err(|e| match e {
                        StorageError::NotFound(_) => AppError::internal(format!(
                            "a file of version {} is missing from the blob store",
                            version.id
                        )),
                        other => AppError::internal(other),
                    })?
            }
            Source::Tar(tarball) => tarball.clone().stream(state.app.blobs.clone(), start..end),
        };
        if start == 0 {
            state.app.downloads.note(grant, client);
        }
        Body::from_stream(stream)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers_out = response.headers_mut();
    insert_all(headers_out, &common)?;
    headers_out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(served.content_type),
    );
    headers_out.insert(
        header::CONTENT_LENGTH,
        header_value(&(end - start).to_string())?,
    );
    headers_out.insert(header::CONTENT_DISPOSITION, header_value(&disposition)?);
    if status == StatusCode::PARTIAL_CONTENT {
        headers_out.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {start}-{}/{size}", end - 1))?,
        );
    }
    tracing::info!(version_id = %version.id, start, end, "download");
    Ok(response)
}

/// Sets every `(name, value)` of `headers` on an answer.
fn insert_all(out: &mut HeaderMap, headers: &[(header::HeaderName, String)]) -> AppResult<()> {
    for (name, value) in headers {
        out.insert(name, header_value(value)?);
    }
    Ok(())
}

fn header_value(value: &str) -> AppResult<HeaderValue> {
    HeaderValue::from_str(value).map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::{RangeRequest::*, parse_range};

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(parse_range("bytes=0-9", 100), Partial(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), Partial(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), Partial(90, 100));
        assert_eq!(parse_range("bytes=95-200", 100), Partial(95, 100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full);
        assert_eq!(parse_range("items=0-1", 100), Full);
        assert_eq!(parse_range("bytes=9-3", 100), Full);
    }
}
