//! Authentication: passwords, access tokens (JWT), API tokens, and the `Viewer` that every
//! request carries once its bearer token has been checked.

pub mod api_token;
pub mod jwt;
pub mod password;
mod viewer;

pub use viewer::{Admin, Authenticated, Credential, Scope, ScopeSet, Viewer};
