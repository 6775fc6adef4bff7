//! Answers to catalog reads (`models`, `model`, `modelByName`, `modelVersion`), kept for a few
//! seconds per viewer, so that the pages everyone asks for again and again cost one lookup.
//!
//! An answer is served only to the same viewer (account, role, credential and scopes) for the
//! same document and variables, and only while no change (mutation, download) has gone through
//! this process since it was computed (see [`ChangeCounter`]): a replica sees its own writes at
//! once, and other replicas' writes within the time to live.

use std::time::Duration;

use async_graphql::Request;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::{auth::Viewer, state::ChangeCounter};

/// The most memory cached answers may take.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The cache key of one request by one viewer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

#[derive(Clone)]
struct Entry {
    generation: u64,
    body: Bytes,
}

/// Cached answers, invalidated by changes and by age.
pub struct ResponseCache {
    entries: moka::sync::Cache<Key, Entry>,
}

impl ResponseCache {
    /// A cache whose answers live at most `ttl`; `None` when `ttl` is zero (caching off).
    pub fn new(ttl: Duration) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|_, entry: &Entry| u32::try_from(entry.body.len()).unwrap_or(u32::MAX))
                .time_to_live(ttl)
                .build(),
        })
    }

    /// The key of `request` made by `viewer`.
    pub fn key(viewer: &Viewer, request: &Request) -> Key {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
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
        field(
            request
                .operation_name
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        );
        field(
            serde_json::to_string(&request.variables)
                .unwrap_or_default()
                .as_bytes(),
        );
        Key(hash.finalize().into())
    }

    /// A cached answer that is still current at `changes`.
    pub fn get(&self, key: &Key, changes: &ChangeCounter) -> Option<Bytes> {
        self.entries
            .get(key)
            .filter(|entry| entry.generation == changes.current())
            .map(|entry| entry.body)
    }

    /// Keeps an answer computed at `generation` (the change count read before computing it).
    pub fn put(&self, key: Key, generation: u64, body: Bytes, changes: &ChangeCounter) {
        if generation == changes.current() {
            self.entries.insert(key, Entry { generation, body });
        }
    }
}
