//! What every request shares: configuration, the database pool, the blob store and the keys.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use sea_orm::DatabaseConnection;

use uuid::Uuid;

use crate::{
    auth::{Viewer, jwt::JwtKeys},
    config::Config,
    entities::{model, model_version},
    services::{
        change_cache::ChangeCache, download_counts::DownloadCounter, events::LiveEvents,
        inference::Inference, inspection::Inspector, rate_limit::RateLimiter,
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
    /// The ONNX models loaded for `predict`, and the slots runs take.
    pub inference: Inference,
}

/// A count of changes (mutations, downloads) made through this process, and of those other
/// replicas announced (see [`crate::services::change_feed`]). Caches tag what they compute
/// with the count read before computing it, and use it only while the count is the same.
/// Changes to accounts and credentials (an account disabled, a token revoked, sessions ended)
/// are also counted apart, for the credential cache, which other changes leave alone.
#[derive(Debug)]
pub struct ChangeCounter {
    count: AtomicU64,
    accounts: AtomicU64,
    /// Whether a local change to accounts waits to be announced.
    accounts_unannounced: AtomicBool,
    /// Woken by local changes, for the announcer.
    local: tokio::sync::Notify,
    /// Moved by every change, local or announced, for the jobs that react to changes.
    any: tokio::sync::watch::Sender<()>,
}

impl Default for ChangeCounter {
    fn default() -> Self {
        Self {
            count: AtomicU64::default(),
            accounts: AtomicU64::default(),
            accounts_unannounced: AtomicBool::default(),
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

    /// The current count of changes to accounts and credentials.
    pub fn accounts_current(&self) -> u64 {
        self.accounts.load(Ordering::Acquire)
    }

    /// Records a change made here: everything cached before is stale, here and (once
    /// announced) on the other replicas; credentials excepted.
    pub fn bump(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.local.notify_one();
        self.any.send_replace(());
    }

    /// Records a change to accounts or credentials made here: everything cached before is
    /// stale, credentials included.
    pub fn bump_accounts(&self) {
        self.accounts.fetch_add(1, Ordering::AcqRel);
        self.accounts_unannounced.store(true, Ordering::Release);
        self.bump();
    }

    /// Whether local changes to accounts came since the previous call (for the announcer).
    pub fn take_accounts_changed(&self) -> bool {
        self.accounts_unannounced.swap(false, Ordering::AcqRel)
    }

    /// Puts back a change to accounts whose announcement failed, for the next one.
    pub fn keep_accounts_unannounced(&self) {
        self.accounts_unannounced.store(true, Ordering::Release);
    }

    /// Records a change another replica announced (`accounts`: one to accounts or
    /// credentials): everything cached before is stale.
    pub fn remote_change(&self, accounts: bool) {
        if accounts {
            self.accounts.fetch_add(1, Ordering::AcqRel);
        }
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
        let inference = Inference::new(&config.inference);
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
            inference,
        })))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeCounter;

    #[test]
    fn credentials_go_stale_only_with_changes_to_accounts() {
        let changes = ChangeCounter::default();
        let (all, accounts) = (changes.current(), changes.accounts_current());
        changes.bump();
        changes.remote_change(false);
        assert_eq!(changes.current(), all + 2);
        assert_eq!(changes.accounts_current(), accounts);
        assert!(!changes.take_accounts_changed());
        changes.bump_accounts();
        assert_eq!(changes.current(), all + 3);
        assert_eq!(changes.accounts_current(), accounts + 1);
        assert!(changes.take_accounts_changed());
        assert!(!changes.take_accounts_changed(), "announced once");
        changes.remote_change(true);
        assert_eq!(changes.accounts_current(), accounts + 2);
    }
}
