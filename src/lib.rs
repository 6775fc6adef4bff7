//! Model Hub: a GraphQL server to store, version, find, approve and download machine-learning
//! model files.
//!
//! Layers, in one direction: `http` and `graphql` (transport) → `services` (rules) →
//! `entities` and `storage` (persistence). `build_app` wires them; `main.rs` only parses the
//! command line.

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod entities;
pub mod error;
pub mod graphql;
pub mod http;
pub mod services;
pub mod state;
pub mod storage;

use std::net::SocketAddr;

use axum::Router;
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::{
    config::Config, services::rate_limit::RateLimiter, state::AppState, storage::BlobStore,
};

/// Why the server could not start; each names the setting to look at.
#[derive(Debug, Error)]
pub enum StartupError {
    /// The database could not be opened.
    #[error("MODELHUB_DATABASE_URL: cannot connect to the database: {0}")]
    Database(sea_orm::DbErr),
    /// Migrations failed.
    #[error("MODELHUB_DATABASE_URL: cannot apply migrations: {0}")]
    Migration(sea_orm::DbErr),
    /// The JWT secret is not a usable key.
    #[error("MODELHUB_JWT_SECRET: unusable as a signing key: {0}")]
    JwtKey(jsonwebtoken::errors::Error),
    /// Redis could not be reached.
    #[error("MODELHUB_REDIS_URL: cannot connect to Redis: {0}")]
    Redis(redis::RedisError),
    /// The blob store could not be opened.
    #[error("MODELHUB_STORAGE_URL: cannot open the blob store: {0}")]
    Storage(storage::StorageError),
}

/// A built application: its router and the state behind it.
pub struct App {
    /// The HTTP router to serve.
    pub router: Router,
    /// The shared state (tests reach the database through it).
    pub state: AppState,
}

/// Opens the database (applying migrations) and the blob store.
pub async fn open_state(config: Config) -> Result<AppState, StartupError> {
    let db: DatabaseConnection = db::connect(&config.database_url)
        .await
        .map_err(StartupError::Database)?;
    db::migrate(&db).await.map_err(StartupError::Migration)?;
    let blobs = BlobStore::open(&config.storage, &config.s3).map_err(StartupError::Storage)?;
    let limiter = match &config.redis_url {
        Some(url) => RateLimiter::redis(
            config.rate_limits.clone(),
            url.expose_secret(),
            &config.redis_prefix,
        )
        .await
        .map_err(StartupError::Redis)?,
        None => RateLimiter::in_memory(config.rate_limits.clone()),
    };
    AppState::new(config, db, blobs, limiter).map_err(StartupError::JwtKey)
}

/// Builds the application from its configuration.
pub async fn build_app(config: Config) -> Result<App, StartupError> {
    let state = open_state(config).await?;
    Ok(app_from_state(state))
}

/// Builds the router around an opened state.
pub fn app_from_state(state: AppState) -> App {
    let schema = graphql::build_schema(state.clone());
    let introspection = graphql::build_introspection_schema(state.clone());
    App {
        router: http::router(state.clone(), schema, introspection),
        state,
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// and writes the download counts they noted.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Without TCP_NODELAY, a response written in two parts waits for the client's delayed
    // acknowledgement of the first (up to 40 ms on Linux).
    let listener =
        axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
    let state = app.state.clone();
    let counts = tokio::spawn(services::download_counts::DownloadCounter::run(
        state.clone(),
    ));
    let feed = state
        .config
        .redis_url
        .is_some()
        .then(|| tokio::spawn(services::change_feed::run(state.clone())));
    let events = tokio::spawn(services::events::pump(state.clone()));
    let webhooks = tokio::spawn(services::webhook_delivery::run(state.clone()));
    let served = axum::serve(
        listener,
        app.router
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    counts.abort();
    events.abort();
    webhooks.abort();
    if let Some(feed) = feed {
        feed.abort();
    }
    flush_downloads(&state).await;
    served
}

/// Writes the download counts noted but not written yet (at shutdown).
pub async fn flush_downloads(state: &AppState) {
    if let Err(e) = state.downloads.flush(state).await {
        tracing::error!(error = %e.cause().unwrap_or_else(|| e.message()), "download counts could not be written");
    }
}
