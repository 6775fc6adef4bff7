//! Answers to catalog reads (`models`, `model`, `modelByName`, `modelVersion`), kept for a few
//! seconds per viewer, so that the pages everyone asks for again and again cost one lookup.
//!
//! An answer is served only to the same viewer (account, role, credential and scopes) for the
//! same document and variables, and only while no change (mutation, download) has gone through
//! this process since it was computed (the change count is part of the key, see
//! [`ChangeCounter`](crate::state::ChangeCounter)): a replica sees its own writes at once, and
//! other replicas' writes within the time to live. Concurrent misses of one key wait for a
//! single execution instead of all running it.

use std::time::Duration;

use async_graphql::Request;
use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::auth::Viewer;

/// The most memory cached answers may take.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The cache key of one request by one viewer at one change count.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

/// A serialized GraphQL answer.
#[derive(Clone)]
pub struct Answer {
    pub status: StatusCode,
    /// Seconds to announce in `Retry-After`.
    pub retry_after: Option<u64>,
    pub body: Bytes,
    /// Whether it may be given to the same viewer's identical requests: one operation, no
    /// errors.
    pub shareable: bool,
}

impl Answer {
    /// The answer when the server itself failed.
    pub fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            retry_after: None,
            body: Bytes::from_static(
                br#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#,
            ),
            shareable: false,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/graphql-response+json")],
            self.body,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Cached answers, dropped when their time to live is over.
pub struct ResponseCache {
    entries: moka::future::Cache<Key, Answer>,
}

impl ResponseCache {
    /// A cache whose answers live at most `ttl`; `None` when `ttl` is zero (caching off).
    pub fn new(ttl: Duration) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            entries: moka::future::Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|_, answer: &Answer| u32::try_from(answer.body.len()).unwrap_or(u32::MAX))
                .time_to_live(ttl)
                .build(),
        })
    }

    /// The key of `request` made by `viewer` when the change count is `changes`.
    pub fn key(viewer: &Viewer, request: &Request, changes: u64) -> Key {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(&changes.to_le_bytes());
        match viewer {
            Viewer::Anonymous => field(b"anonymous"),
            Viewer::User(user) => field(
                format!(
                    "{}/{:?}/{:?}/{:?}",
                    user.user.id, user.user.role, user.credential, user.scopes
                )
                .as_bytes(),
            ),
        }
        field(request.query.as_bytes());
        match &request.operation_name {
            Some(name) => field(format!("+{name}").as_bytes()),
            None => field(b"-"),
        }
        field(
            serde_json::to_string(&request.variables)
                .unwrap_or_default()
                .as_bytes(),
        );
        Key(hash.finalize().into())
    }

    /// A cached answer.
    pub async fn get(&self, key: &Key) -> Option<Answer> {
        self.entries.get(key).await
    }

    /// The cached answer under `key`, or the one `compute` makes: kept if shareable, and given
    /// to the callers that asked for the same key meanwhile either way.
    pub async fn get_or_compute(&self, key: Key, compute: impl Future<Output = Answer>) -> Answer {
        let outcome = self
            .entries
            .try_get_with(key, async move {
                let answer = compute.await;
                if answer.shareable {
                    Ok(answer)
                } else {
                    Err(answer)
                }
            })
            .await;
        outcome.unwrap_or_else(|answer| (*answer).clone())
    }
}
