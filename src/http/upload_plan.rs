//! What a multipart upload asks to do, read from its `operations` part before any file part:
//! the mutations that would store the files, and the models they target. The caller is
//! authorized for all of it (see [`crate::services::versions::authorize_upload`]) before a
//! byte of a file is read.

use async_graphql::parser::{
    parse_query,
    types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet},
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    services::versions::UploadTarget,
};

/// How deep fragment spreads are followed among a mutation's root fields.
const MAX_FRAGMENT_DEPTH: usize = 8;

fn bad(message: impl Into<String>) -> AppError {
    AppError::bad_input("operations", message)
}

/// The upload targets of every operation in `operations` (one request or a batch).
pub fn targets(operations: &Value) -> AppResult<Vec<UploadTarget>> {
    let requests: Vec<&Value> = match operations {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    let mut found = Vec::new();
    for request in requests {
        let query = request
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("an operation has no `query`"))?;
        let document =
            parse_query(query).map_err(|e| bad(format!("the query does not parse: {e}")))?;
        let variables = request.get("variables").unwrap_or(&Value::Null);
        let name = request.get("operationName").and_then(Value::as_str);
        let operations: Vec<_> = match &document.operations {
            DocumentOperations::Single(op) => vec![&op.node],
            DocumentOperations::Multiple(ops) => ops
                .iter()
                .filter(|(n, _)| name.is_none_or(|wanted| n.as_str() == wanted))
                .map(|(_, op)| &op.node)
                .collect(),
        };
        for operation in operations {
            if operation.ty == OperationType::Mutation {
                collect(
                    &document,
                    &operation.selection_set.node,
                    variables,
                    0,
                    &mut found,
                )?;
            }
        }
    }
    Ok(found)
}

fn collect(
    document: &ExecutableDocument,
    set: &SelectionSet,
    variables: &Value,
    depth: usize,
    found: &mut Vec<UploadTarget>,
) -> AppResult<()> {
    if depth > MAX_FRAGMENT_DEPTH {
        return Err(bad("fragments nest too deep"));
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                match field.name.node.as_str() {
                    "createModel" => found.push(UploadTarget::NewModel),
                    "createModelVersion" => {
                        // The argument, with a variable replaced by its value.
                        let id = field.get_argument("modelId").and_then(|v| {
                            let value = v.node.clone().into_const_with(|name| {
                                Ok::<_, ()>(
                                    variables
                                        .get(name.as_str())
                                        .cloned()
                                        .and_then(|v| async_graphql::Value::from_json(v).ok())
                                        .unwrap_or(async_graphql::Value::Null),
                                )
                            });
                            match value {
                                Ok(async_graphql::Value::String(id)) => Some(id),
                                _ => None,
                            }
                        });
                        let id = id
                            .and_then(|id| Uuid::parse_str(&id).ok())
                            .ok_or_else(|| AppError::bad_input("modelId", "is not a model id"))?;
                        found.push(UploadTarget::NewVersion(id));
                    }
                    _ => {}
                }
            }
            Selection::InlineFragment(fragment) => {
                collect(
                    document,
                    &fragment.node.selection_set.node,
                    variables,
                    depth + 1,
                    found,
                )?;
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(
                        document,
                        &fragment.node.selection_set.node,
                        variables,
                        depth + 1,
                        found,
                    )?;
                }
            }
        }
    }
    Ok(())
}
