//! Recently resolved credentials, so that a signed-in caller's repeated requests do not each
//! read their account. An entry is used only while no change has gone through this process
//! since it was read (a disabled account or a revoked token is refused at once here; other
//! replicas notice within the time to live) and only until the credential itself expires.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::auth::Viewer;

/// Most credentials kept.
const CAPACITY: u64 = 100_000;

#[derive(Clone)]
struct Entry {
    generation: u64,
    expires_at: Option<DateTime<Utc>>,
    viewer: Viewer,
}

/// Credentials (by the SHA-256 of the bearer token) and whom they resolved to.
pub struct CredentialCache {
    entries: moka::sync::Cache<[u8; 32], Entry>,
}

impl CredentialCache {
    /// A cache whose entries live at most `ttl`; `None` when `ttl` is zero.
    pub fn new(ttl: Duration) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
        })
    }

    /// The key of a bearer token (the token itself is not kept).
    pub fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// Whom the token resolved to, if that is still current at `generation`.
    pub fn get(&self, key: &[u8; 32], generation: u64) -> Option<Viewer> {
        self.entries
            .get(key)
            .filter(|entry| entry.generation == generation)
            .filter(|entry| entry.expires_at.is_none_or(|at| Utc::now() < at))
            .map(|entry| entry.viewer)
    }

    /// Keeps a resolution read at `generation`.
    pub fn put(
        &self,
        key: [u8; 32],
        generation: u64,
        expires_at: Option<DateTime<Utc>>,
        viewer: Viewer,
    ) {
        self.entries.insert(
            key,
            Entry {
                generation,
                expires_at,
                viewer,
            },
        );
    }
}
