//! What every request shares: configuration, the database pool, the blob store and the keys.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use sea_orm::DatabaseConnection;

use uuid::Uuid;

use crate::{
    auth::{Viewer, jwt::JwtKeys},
    config::Config,
    entities::{model, model_version},
    services::{
        change_cache::ChangeCache, download_counts::DownloadCounter, events::LiveEvents,
        inspection::Inspector, rate_limit::RateLimiter,
    },
    storage::BlobStore,
};

/// Most credentials, versions and list totals kept.
const CACHED_CREDENTIALS: u64 = 100_000;
const CACHED_VERSIONS: u64 = 100_000;
const CACHED_TOTALS: u64 = 10_000;

/// How long a list total counted here may serve while other replicas change the catalog
/// (this process's own changes make it stale at once). Totals are counted over every visible
/// row, so counting each on every request would make a page's cost grow with the catalog.
const TOTALS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// A version and its model, as read together.
pub type FoundVersion = Arc<(model_version::Model, model::Model)>;

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
    /// Recently resolved credentials (by the SHA-256 of the bearer token, which is not
    /// kept); `None` when caching is off.
    pub credentials: Option<ChangeCache<[u8; 32], Viewer>>,
    /// Runs the static inspection of model files.
    pub inspector: Inspector,
    /// Downloads noted, not yet written.
    pub downloads: DownloadCounter,
    /// Recently read versions with their models, for downloads; `None` when caching is off.
    pub versions: Option<ChangeCache<Uuid, FoundVersion>>,
    /// Recently counted list totals, by their SQL statement.
    pub totals: Option<ChangeCache<String, u64>>,
    /// This process's name among the replicas (for leases and change announcements).
    pub replica: String,
    /// Change events as they are written, for subscriptions.
    pub events: LiveEvents,
}

/// A count of changes (mutations, downloads) made through this process, and of those other
/// replicas announced (see [`crate::services::change_feed`]). Caches tag what they compute
/// with the count read before computing it, and use it only while the count is the same.
#[derive(Debug)]
pub struct ChangeCounter {
    count: AtomicU64,
    /// Woken by local changes, for the announcer.
    local: tokio::sync::Notify,
    /// Moved by every change, local or announced, for the jobs that react to changes.
    any: tokio::sync::watch::Sender<()>,
}

impl Default for ChangeCounter {
    fn default() -> Self {
        Self {
            count: AtomicU64::default(),
            local: tokio::sync::Notify::new(),
            any: tokio::sync::watch::Sender::new(()),
        }
    }
}

impl ChangeCounter {
    /// The current count.
    pub fn current(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Records a change made here: everything cached before is stale, here and (once
    /// announced) on the other replicas.
    pub fn bump(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.local.notify_one();
        self.any.send_replace(());
    }

    /// Records a change another replica announced: everything cached before is stale.
    pub fn remote_change(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.any.send_replace(());
    }

    /// A receiver that sees every change from now on, made here or announced (several
    /// changes between two looks are one).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<()> {
        self.any.subscribe()
    }

    /// Waits for a change made here since the previous wait (changes meanwhile are one).
    pub async fn local_change(&self) {
        self.local.notified().await;
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
        let ttl = config.response_cache_ttl;
        let inspector = Inspector::new(&config);
        Ok(Self(Arc::new(Inner {
            inspector,
            downloads: DownloadCounter::default(),
            versions: ChangeCache::new(ttl, CACHED_VERSIONS),
            totals: ChangeCache::new(TOTALS_TTL, CACHED_TOTALS),
            config,
            db,
            blobs,
            jwt,
            limiter,
            changes: ChangeCounter::default(),
            credentials: ChangeCache::new(ttl, CACHED_CREDENTIALS),
            replica: Uuid::new_v4().simple().to_string(),
            events: LiveEvents::default(),
        })))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
