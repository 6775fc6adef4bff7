//! Typed access to what a resolver needs: the shared state and the caller.

use async_graphql::Context;

use super::loaders::Loaders;
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
    state::AppState,
};

/// Accessors for the data every request carries.
pub trait RequestContext {
    /// The shared application state.
    fn state(&self) -> &AppState;
    /// The caller (anonymous when the request had no token).
    fn viewer(&self) -> &Viewer;
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
}

/// The request's DataLoaders (installed by the HTTP handler).
pub fn loaders<'a>(ctx: &'a Context<'_>) -> AppResult<&'a Loaders> {
    ctx.data_opt::<std::sync::Arc<Loaders>>()
        .map(|l| l.as_ref())
        .ok_or_else(|| AppError::internal("the request has no DataLoaders"))
}
