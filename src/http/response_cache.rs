//! Answers to catalog reads (`models`, `model`, `modelByName`, `modelVersion`), kept for a few
//! seconds per viewer, so that the pages everyone asks for again and again cost one lookup.
//!
//! An answer is served only to the same viewer (account, role, credential and scopes) for the
//! same document and variables, and only while no mutation has gone through this process since
//! it was computed: a replica sees its own writes at once, and other replicas' writes (and
//! download counters) within the time to live.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_graphql::Request;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::auth::Viewer;

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

/// Cached answers, invalidated by mutations and by age.
pub struct ResponseCache {
    entries: moka::sync::Cache<Key, Entry>,
    /// Bumped after every mutation; answers computed before are stale.
    generation: AtomicU64,
}

impl ResponseCache {
    /// A cache whose answers live at most `ttl`; `None` when `ttl` is zero (caching off).
    pub fn new(ttl: Duration) -> Option<Arc<Self>> {
        if ttl.is_zero() {
            return None;
        }
        let entries = moka::sync::Cache::builder()
            .max_capacity(MAX_BYTES)
            .weigher(|_, entry: &Entry| u32::try_from(entry.body.len()).unwrap_or(u32::MAX))
            .time_to_live(ttl)
            .build();
        Some(Arc::new(Self {
            entries,
            generation: AtomicU64::new(0),
        }))
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

    /// The generation to store an answer under: read before computing it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A cached answer that is still current.
    pub fn get(&self, key: &Key) -> Option<Bytes> {
        self.entries
            .get(key)
            .filter(|entry| entry.generation == self.generation())
            .map(|entry| entry.body)
    }

    /// Keeps an answer computed at `generation`.
    pub fn put(&self, key: Key, generation: u64, body: Bytes) {
        if generation == self.generation() {
            self.entries.insert(key, Entry { generation, body });
        }
    }

    /// Makes every cached answer stale (after a mutation).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
