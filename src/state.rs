//! What every request shares: configuration, the database pool, the blob store and the keys.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::jwt::JwtKeys, config::Config, services::rate_limit::RateLimiter, storage::BlobStore,
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
        Ok(Self(Arc::new(Inner {
            config,
            db,
            blobs,
            jwt,
            limiter,
        })))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
