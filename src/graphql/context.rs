//! Typed access to what a resolver needs: the shared state and the caller.

use std::sync::Arc;

use async_graphql::Context;

use super::loaders::Loaders;
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
    state::AppState,
};

/// The client's address (for per-IP rate limits), installed by the HTTP handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

/// Accessors for the data every request carries.
pub trait RequestContext {
    /// The shared application state.
    fn state(&self) -> &AppState;
    /// The caller (anonymous when the request had no token).
    fn viewer(&self) -> &Viewer;
    /// The client's IP address, if known.
    fn client_ip(&self) -> Option<std::net::IpAddr>;
}

static ANONYMOUS: Viewer = Viewer::Anonymous;

impl RequestContext for Context<'_> {
    fn state(&self) -> &AppState {
        // The schema is always built with the state (see `build_schema`).
        self.data_unchecked::<AppState>()
    }

    fn viewer(&self) -> &Viewer {
        self.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
    }

    fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.data_opt::<ClientIp>().and_then(|ip| ip.0)
    }
}

/// The request's DataLoaders (installed by the HTTP handler), or those of the event a
/// subscription is sending.
pub fn loaders(ctx: &Context<'_>) -> AppResult<Arc<Loaders>> {
    if let Some(loaders) = ctx.data_opt::<Arc<Loaders>>() {
        return Ok(loaders.clone());
    }
    ctx.data_opt::<Arc<EventLoaders>>()
        .and_then(|slot| slot.current())
        .ok_or_else(|| AppError::internal("the request has no DataLoaders"))
}

/// A WebSocket connection's loaders: each event a subscription sends gets fresh ones, so a
/// long-lived connection never answers from what an earlier event loaded.
#[derive(Default)]
pub struct EventLoaders(std::sync::Mutex<Option<Arc<Loaders>>>);

impl EventLoaders {
    /// Puts fresh loaders in place for the next event.
    pub fn replace(&self, loaders: Arc<Loaders>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(loaders);
    }

    fn current(&self) -> Option<Arc<Loaders>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The credential a WebSocket connection was opened with, read again before each event its
/// subscriptions send.
#[derive(Clone)]
pub struct SocketCredential {
    /// The bearer token from the connection's init payload (or its upgrade request).
    pub token: Option<String>,
}
