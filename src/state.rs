//! What every request shares: configuration, the database pool, the blob store and the keys.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use sea_orm::DatabaseConnection;

use crate::{
    auth::jwt::JwtKeys,
    config::Config,
    services::{
        credential_cache::CredentialCache, download_counts::DownloadCounter, inspection::Inspector,
        rate_limit::RateLimiter, version_cache::VersionCache,
    },
    storage::BlobStore,
};

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// The configuration the server was started with.
    pub config: Config,
    /// The database pool.
    pub db: DatabaseConnection,
    /// Where model files live.
    pub blobs: BlobStore,
    /// JWT signing and verification keys.
    pub jwt: JwtKeys,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// Counts the changes made through this process, for the caches.
    pub changes: ChangeCounter,
    /// Recently resolved credentials; `None` when caching is off.
    pub credentials: Option<CredentialCache>,
    /// Runs the static inspection of model files.
    pub inspector: Inspector,
    /// Downloads noted, not yet written.
    pub downloads: DownloadCounter,
    /// Recently read versions; `None` when caching is off.
    pub versions: Option<VersionCache>,
}

/// A count of changes (mutations, downloads) made through this process. Caches tag what they
/// compute with the count read before computing it, and use it only while the count is the
/// same.
#[derive(Debug, Default)]
pub struct ChangeCounter(AtomicU64);

impl ChangeCounter {
    /// The current count.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Records a change: everything cached before is stale.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl AppState {
    /// Bundles the parts; fails if the JWT secret cannot be used as a key.
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        blobs: BlobStore,
        limiter: RateLimiter,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let jwt = JwtKeys::new(&config.jwt_secret)?;
        let credentials = CredentialCache::new(config.response_cache_ttl);
        let inspector = Inspector::new(&config);
        Ok(Self(Arc::new(Inner {
            inspector,
            downloads: DownloadCounter::default(),
            versions: VersionCache::new(config.response_cache_ttl),
            config,
            db,
            blobs,
            jwt,
            limiter,
            changes: ChangeCounter::default(),
            credentials,
        })))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
