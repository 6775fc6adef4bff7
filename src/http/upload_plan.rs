//! What a multipart upload asks to do, read from its `operations` part before any file part:
//! the mutations that would store the files, and the models they target. The caller is
//! authorized for all of it (see [`crate::services::versions::authorize_upload`]) before a
//! byte of a file is read.

use async_graphql::parser::{
    parse_query,
    types::{DocumentOperations, Field, OperationType},
};
use serde_json::Value;
use uuid::Uuid;

use super::root_fields::root_fields;
use crate::{
    error::{AppError, AppResult},
    services::versions::UploadTarget,
};

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
                let fields = root_fields(&document, &operation.selection_set.node)
                    .map_err(|e| bad(e.to_string()))?;
                for field in fields {
                    found.extend(target(field, variables)?);
                }
            }
        }
    }
    Ok(found)
}

/// The upload target of a mutation's root field, if it stores a file.
fn target(field: &Field, variables: &Value) -> AppResult<Option<UploadTarget>> {
    let id_argument = |name: &str| -> AppResult<Uuid> {
        // The argument, with a variable replaced by its value.
        let id = field.get_argument(name).and_then(|v| {
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
        id.and_then(|id| Uuid::parse_str(&id).ok())
            .ok_or_else(|| AppError::bad_input(name, "is not an id"))
    };
    match field.name.node.as_str() {
        "createModel" => Ok(Some(UploadTarget::NewModel)),
        "createModelVersion" => Ok(Some(UploadTarget::NewVersion(id_argument("modelId")?))),
        "addDraftFiles" => Ok(Some(UploadTarget::DraftFiles(id_argument("draftId")?))),
        _ => Ok(None),
    }
}
