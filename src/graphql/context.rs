//! Typed access to what a resolver needs: the shared state and the caller.

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

/// The request's DataLoaders (installed by the HTTP handler).
pub fn loaders<'a>(ctx: &'a Context<'_>) -> AppResult<&'a Loaders> {
    ctx.data_opt::<std::sync::Arc<Loaders>>()
        .map(|l| l.as_ref())
        .ok_or_else(|| AppError::internal("the request has no DataLoaders"))
}
