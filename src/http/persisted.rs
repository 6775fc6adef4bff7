//! Automatic persisted queries, as Apollo Client's persisted-queries link speaks them: a
//! request may send `extensions.persistedQuery = { version: 1, sha256Hash }` instead of its
//! query; a hash this replica does not know is answered `PersistedQueryNotFound` (HTTP 200,
//! code `PERSISTED_QUERY_NOT_FOUND`), and the client sends the query with its hash once, which
//! is checked and remembered. Works on GET (the hash in the `extensions` parameter, so the
//! answer can be cached by the browser and proxies) and POST. Each replica remembers the
//! queries it was sent, up to [`MAX_BYTES`], for a day after their last use; a replica that
//! does not know one just asks for it.

use std::{sync::Arc, time::Duration};

use async_graphql::{BatchRequest, Request};
use sha2::{Digest, Sha256};

use crate::{
    auth::api_token::hex,
    error::{AppError, AppResult},
};

/// The most query text remembered.
const MAX_BYTES: u64 = 32 * 1024 * 1024;
/// How long a query not used is remembered.
const IDLE: Duration = Duration::from_secs(24 * 3600);

/// The queries this replica was sent, by their SHA-256.
pub struct PersistedQueries(moka::sync::Cache<String, Arc<str>>);

impl Default for PersistedQueries {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .weigher(|hash: &String, query: &Arc<str>| {
                    u32::try_from(hash.len() + query.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(MAX_BYTES)
                .time_to_idle(IDLE)
                .build(),
        )
    }
}

impl PersistedQueries {
    /// Fills in the query of every request of the batch that names one by its hash, and
    /// remembers those sent with both.
    pub fn resolve(&self, batch: &mut BatchRequest) -> AppResult<()> {
        let requests: Vec<&mut Request> = match batch {
            BatchRequest::Single(request) => vec![request],
            BatchRequest::Batch(requests) => requests.iter_mut().collect(),
        };
        for request in requests {
            let Some(persisted) = request.extensions.get("persistedQuery") else {
                continue;
            };
            let persisted = persisted
                .clone()
                .into_json()
                .map_err(|_| invalid("must be an object"))?;
            if let Some(query) = self.query_for(&persisted, &request.query)? {
                request.query = query.to_string();
            }
        }
        Ok(())
    }

    /// The same for the raw `operations` of a multipart request (one request or a batch),
    /// read before its files, so that the files are not read for a query to be sent again.
    pub fn resolve_json(&self, operations: &mut serde_json::Value) -> AppResult<()> {
        let requests: Vec<&mut serde_json::Value> = match operations {
            serde_json::Value::Array(batch) => batch.iter_mut().collect(),
            single => vec![single],
        };
        for request in requests {
            let Some(persisted) = request.pointer("/extensions/persistedQuery").cloned() else {
                continue;
            };
            let query = request
                .get("query")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            if let Some(query) = self.query_for(&persisted, query)? {
                request["query"] = serde_json::Value::String(query.to_string());
            }
        }
        Ok(())
    }

    /// The query a request names by `persisted` (`{ version: 1, sha256Hash }`) when it sent
    /// none; a query sent with its hash is checked and remembered.
    fn query_for(&self, persisted: &serde_json::Value, query: &str) -> AppResult<Option<Arc<str>>> {
        let serde_json::Value::Object(fields) = persisted else {
            return Err(invalid("must be an object"));
        };
        if fields.get("version").and_then(serde_json::Value::as_u64) != Some(1) {
            return Err(invalid("has an unsupported version (only 1 is)"));
        }
        let hash = fields
            .get("sha256Hash")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| invalid("has no sha256Hash"))?
            .to_ascii_lowercase();
        if query.trim().is_empty() {
            return match self.0.get(&hash) {
                Some(query) => Ok(Some(query)),
                None => Err(AppError::PersistedQueryNotFound),
            };
        }
        if hex(&Sha256::digest(query.as_bytes())) != hash {
            return Err(invalid("has a sha256Hash that is not the query's"));
        }
        self.0.insert(hash, Arc::from(query));
        Ok(None)
    }
}

fn invalid(why: &str) -> AppError {
    AppError::bad_input("extensions.persistedQuery", why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn request(query: &str, hash: &str) -> BatchRequest {
        let mut request = Request::new(query);
        request.extensions.0.insert(
            "persistedQuery".into(),
            async_graphql::value!({ "version": 1, "sha256Hash": hash }),
        );
        BatchRequest::Single(request)
    }

    fn code(result: AppResult<()>) -> Option<ErrorCode> {
        result.err().map(|e| e.code())
    }

    #[test]
    fn a_hash_is_known_once_its_query_was_sent_with_it() {
        let cache = PersistedQueries::default();
        let query = "{ __typename }";
        let hash = hex(&Sha256::digest(query.as_bytes()));
        assert_eq!(
            code(cache.resolve(&mut request("", &hash))),
            Some(ErrorCode::PersistedQueryNotFound)
        );
        assert_eq!(code(cache.resolve(&mut request(query, &hash))), None);
        let mut again = request("", &hash.to_uppercase());
        assert_eq!(code(cache.resolve(&mut again)), None);
        let BatchRequest::Single(again) = again else {
            unreachable!()
        };
        assert_eq!(again.query, query);
        // The same in a multipart request's raw operations, one or a batch.
        let mut operations = serde_json::json!([
            { "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } },
            { "query": "{ b }" },
        ]);
        assert_eq!(code(cache.resolve_json(&mut operations)), None);
        assert_eq!(operations[0]["query"], query);
    }

    #[test]
    fn a_query_that_does_not_match_its_hash_is_refused_and_not_kept() {
        let cache = PersistedQueries::default();
        let hash = hex(&Sha256::digest(b"{ a }"));
        assert_eq!(
            code(cache.resolve(&mut request("{ b }", &hash))),
            Some(ErrorCode::BadUserInput)
        );
        assert_eq!(
            code(cache.resolve(&mut request("", &hash))),
            Some(ErrorCode::PersistedQueryNotFound)
        );
        let mut v2 = Request::new("{ a }");
        v2.extensions.0.insert(
            "persistedQuery".into(),
            async_graphql::value!({ "version": 2, "sha256Hash": hash }),
        );
        assert_eq!(
            code(cache.resolve(&mut BatchRequest::Single(v2))),
            Some(ErrorCode::BadUserInput)
        );
        let mut unknown = serde_json::json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
        assert_eq!(
            code(cache.resolve_json(&mut unknown)),
            Some(ErrorCode::PersistedQueryNotFound)
        );
    }
}
