//! The GraphQL schema: one query and one mutation root per domain area, merged.
//! Resolvers read the caller from the context, call a service and shape the result; they never
//! build SQL.

mod accounts;
mod admin;
mod aliases;
mod context;
mod drafts;
mod inference;
mod inspection;
mod loaders;
mod models;
mod scalars;
mod subscriptions;
mod upload;
mod webhooks;

use async_graphql::{MergedObject, Schema};

pub use context::{ClientIp, EventLoaders, RequestContext, SocketCredential};
pub use loaders::Loaders;
pub use upload::{UploadedFile, UploadedFiles};

use crate::state::AppState;

/// Every query field (the schema's `Query` type).
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    accounts::AccountQuery,
    models::ModelQuery,
    aliases::AliasQuery,
    drafts::DraftQuery,
    webhooks::WebhookQuery,
    admin::AdminQuery,
);

/// Every mutation field (the schema's `Mutation` type).
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    accounts::AccountMutation,
    models::ModelMutation,
    aliases::AliasMutation,
    drafts::DraftMutation,
    webhooks::WebhookMutation,
    inference::InferenceMutation,
    admin::AdminMutation,
);

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

pub use subscriptions::SubscriptionRoot;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most expensive query accepted: each field costs 1, and a list costs its page size (`first`,
/// 20 when omitted) times what each item selects. A page of 100 models with their owners,
/// current versions and 20 versions each costs about 10,000.
pub const MAX_COMPLEXITY: usize = 25_000;

/// The complexity of a list field: its page size times its items' complexity.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.map_or(crate::services::pagination::DEFAULT_PAGE_SIZE, |n| {
        usize::try_from(n)
            .unwrap_or(0)
            .min(crate::services::pagination::MAX_PAGE_SIZE)
    });
    size.saturating_mul(child_complexity).saturating_add(1)
}

/// Deepest introspection document accepted: the standard introspection query that GraphiQL,
/// Apollo tooling and code generators send nests type references about 13 levels deep.
pub const MAX_INTROSPECTION_DEPTH: usize = 24;
/// Most expensive introspection document accepted.
pub const MAX_INTROSPECTION_COMPLEXITY: usize = 10_000;

/// Builds the schema with its limits; `state` is available to every resolver.
pub fn build_schema(state: AppState) -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .data(state)
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .finish()
}

/// The same schema with the limits of introspection documents (whose root fields are only
/// `__schema`, `__type` and `__typename`: they read no data, only the schema).
pub fn build_introspection_schema(state: AppState) -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .data(state)
    .limit_depth(MAX_INTROSPECTION_DEPTH)
    .limit_complexity(MAX_INTROSPECTION_COMPLEXITY)
    .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .finish()
    .sdl()
}
