//! Limits on GraphQL requests beyond depth and complexity (which the schema enforces): batch
//! size, aliases, and no mutations over GET. Every refusal carries its own code, and errors
//! the executor raises without one (parse, validation, depth, complexity) get one here.

use async_graphql::{
    BatchRequest, BatchResponse, ErrorExtensionValues, Response, ServerError,
    parser::types::{DocumentOperations, OperationType, Selection, SelectionSet},
};
use axum::http::StatusCode;

use super::root_fields::root_fields;

use crate::error::ErrorCode;

/// Most operations in one batch.
pub const MAX_BATCH: usize = 10;
/// Most aliased fields in one document.
pub const MAX_ALIASES: usize = 64;

/// A refused request: its code and why.
#[derive(Debug)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Root fields whose answers depend only on the catalog and the viewer: a request made of
/// nothing else may be answered from the response cache.
const CATALOG_ROOTS: [&str; 5] = [
    "models",
    "model",
    "modelByName",
    "modelVersion",
    "__typename",
];

/// What a request does, as far as the transport cares.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shape {
    /// It contains a mutation (refused over GET).
    pub writes: bool,
    /// It is one query reading only catalog root fields: its answer may be cached.
    pub catalog_read: bool,
    /// The mutations it calls (root fields of its mutation operations).
    pub mutations: Vec<String>,
    /// It is one query reading only the schema (`__schema`, `__type`): it runs under the
    /// introspection limits.
    pub introspection: bool,
}

/// Whether a selection at the root reads only the schema.
fn reads_only_schema(set: &SelectionSet) -> bool {
    let mut schema = false;
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => match field.node.name.node.as_str() {
                "__schema" | "__type" => schema = true,
                "__typename" => {}
                _ => return false,
            },
            Selection::InlineFragment(_) | Selection::FragmentSpread(_) => return false,
        }
    }
    schema
}

/// Whether a selection at the root reads only catalog fields.
fn reads_only_catalog(set: &SelectionSet) -> bool {
    set.items.iter().all(|item| match &item.node {
        Selection::Field(field) => CATALOG_ROOTS.contains(&field.node.name.node.as_str()),
        Selection::InlineFragment(_) | Selection::FragmentSpread(_) => false,
    })
}

/// Checks a request against the limits and tells what it does. Each document is parsed once
/// here and kept in its request for the executor; documents that do not parse are left to the
/// executor, which reports them.
pub fn check(batch: &mut BatchRequest, is_get: bool) -> Result<Shape, Refusal> {
    let mut shape = Shape::default();
    let single = matches!(batch, BatchRequest::Single(_));
    let requests = match batch {
        BatchRequest::Single(request) => std::slice::from_mut(request),
        BatchRequest::Batch(requests) => {
            if requests.len() > MAX_BATCH {
                return Err(Refusal {
                    code: "BATCH_TOO_LARGE",
                    message: format!("at most {MAX_BATCH} operations per batch"),
                });
            }
            requests.as_mut_slice()
        }
    };
    for request in requests {
        if request.query.trim().is_empty() {
            return Err(Refusal {
                code: "BAD_USER_INPUT",
                message: "the request has no `query`".into(),
            });
        }
        let Ok(document) = request.parsed_query() else {
            continue;
        };
        let operations: Vec<_> = match &document.operations {
            DocumentOperations::Single(op) => vec![op],
            DocumentOperations::Multiple(ops) => ops.values().collect(),
        };
        let aliases: usize = operations
            .iter()
            .map(|op| count_aliases(&op.node.selection_set.node))
            .chain(
                document
                    .fragments
                    .values()
                    .map(|f| count_aliases(&f.node.selection_set.node)),
            )
            .sum();
        if aliases > MAX_ALIASES {
            return Err(Refusal {
                code: "TOO_MANY_ALIASES",
                message: format!("at most {MAX_ALIASES} aliased fields per document"),
            });
        }
        shape.writes |= operations
            .iter()
            .any(|op| op.node.ty != OperationType::Query);
        for op in operations
            .iter()
            .filter(|op| op.node.ty == OperationType::Mutation)
        {
            let fields =
                root_fields(document, &op.node.selection_set.node).map_err(|e| Refusal {
                    code: "QUERY_TOO_DEEP",
                    message: e.to_string(),
                })?;
            shape
                .mutations
                .extend(fields.iter().map(|f| f.name.node.to_string()));
        }
        shape.catalog_read = single
            && !shape.writes
            && operations
                .iter()
                .all(|op| reads_only_catalog(&op.node.selection_set.node));
        shape.introspection = single
            && !shape.writes
            && operations
                .iter()
                .all(|op| reads_only_schema(&op.node.selection_set.node));
        if is_get && shape.writes {
            return Err(Refusal {
                code: "METHOD_NOT_ALLOWED",
                message: "mutations must be sent with POST".into(),
            });
        }
    }
    Ok(shape)
}

/// The code for an error the executor raised without one.
fn code_for(error: &ServerError) -> &'static str {
    if error.message.contains("nested too deep") {
        "QUERY_TOO_DEEP"
    } else if error.message.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else {
        "GRAPHQL_VALIDATION_FAILED"
    }
}

fn add_codes(response: &mut Response) {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !has_code {
            let code = code_for(error);
            error
                .extensions
                .get_or_insert_with(ErrorExtensionValues::default)
                .set("code", code);
        }
    }
}

/// The longest `retryAfter` among a response's RATE_LIMITED errors.
pub fn retry_after(response: &BatchResponse) -> Option<u64> {
    let responses: Vec<&Response> = match response {
        BatchResponse::Single(single) => vec![single],
        BatchResponse::Batch(many) => many.iter().collect(),
    };
    responses
        .iter()
        .flat_map(|r| r.errors.iter())
        .filter_map(|e| e.extensions.as_ref()?.get("retryAfter").cloned())
        .filter_map(|v| match v {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .max()
}

/// The HTTP status of an answer (GraphQL over HTTP, `application/graphql-response+json`): 200
/// when there is data or several operations; when a single operation produced none, the status
/// of its first error's code (400 for request errors: parse, validation, limits).
pub fn status(response: &BatchResponse) -> StatusCode {
    let BatchResponse::Single(single) = response else {
        return StatusCode::OK;
    };
    if single.data != async_graphql::Value::Null {
        return StatusCode::OK;
    }
    single.errors.first().map_or(StatusCode::OK, |error| {
        error
            .extensions
            .as_ref()
            .and_then(|e| match e.get("code") {
                Some(async_graphql::Value::String(code)) => ErrorCode::from_name(code),
                _ => None,
            })
            .map_or(StatusCode::BAD_REQUEST, ErrorCode::status)
    })
}

/// Gives every error of a response a code.
pub fn add_missing_codes(response: &mut BatchResponse) {
    match response {
        BatchResponse::Single(single) => add_codes(single),
        BatchResponse::Batch(many) => many.iter_mut().for_each(add_codes),
    }
}
