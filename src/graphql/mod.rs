//! The GraphQL schema: one query and one mutation root per domain area, merged.
//! Resolvers read the caller from the context, call a service and shape the result; they never
//! build SQL.

mod accounts;
mod admin;
mod context;
mod inspection;
mod loaders;
mod models;
mod scalars;
mod upload;

use async_graphql::{EmptySubscription, MergedObject, Schema};

pub use context::{ClientIp, RequestContext};
pub use loaders::Loaders;
pub use upload::{UploadedFile, UploadedFiles};

use crate::state::AppState;

/// Every query field.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    accounts::AccountQuery,
    models::ModelQuery,
    admin::AdminQuery,
);

/// Every mutation field.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    accounts::AccountMutation,
    models::ModelMutation,
    admin::AdminMutation,
);

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most expensive query accepted (each field costs 1, lists multiply by their page size).
pub const MAX_COMPLEXITY: usize = 5_000;

/// Builds the schema with its limits; `state` is available to every resolver.
pub fn build_schema(state: AppState) -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .data(state)
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .finish()
    .sdl()
}
