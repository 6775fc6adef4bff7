//! The root fields an operation selects, through its fragments: what the access table and the
//! upload plan read before anything runs.

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};

/// How deep fragments are followed among an operation's root fields.
const MAX_FRAGMENT_DEPTH: usize = 8;

/// Fragments nest deeper than [`MAX_FRAGMENT_DEPTH`] among the root fields, which are then
/// not all known (the request is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fragments nest more than {MAX_FRAGMENT_DEPTH} deep among the root fields"
        )
    }
}

/// Every root field of `set`, in document order, with those of its (inline and named)
/// fragments; a spread of an unknown fragment adds nothing (the executor reports it). Each
/// named fragment is walked once, however often it is spread, so the work is bounded by the
/// document's size.
pub fn root_fields<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
) -> Result<Vec<&'d Field>, TooDeep> {
    let mut found = Vec::new();
    let mut walked = HashSet::new();
    walk(document, set, 0, &mut walked, &mut found)?;
    Ok(found)
}

fn walk<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    depth: usize,
    walked: &mut HashSet<&'d str>,
    found: &mut Vec<&'d Field>,
) -> Result<(), TooDeep> {
    if depth > MAX_FRAGMENT_DEPTH {
        return Err(TooDeep);
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => found.push(&field.node),
            Selection::InlineFragment(fragment) => {
                walk(
                    document,
                    &fragment.node.selection_set.node,
                    depth + 1,
                    walked,
                    found,
                )?;
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                if let Some(fragment) = document.fragments.get(name)
                    && walked.insert(name.as_str())
                {
                    walk(
                        document,
                        &fragment.node.selection_set.node,
                        depth + 1,
                        walked,
                        found,
                    )?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::{parse_query, types::DocumentOperations};

    fn names(query: &str) -> Result<Vec<String>, TooDeep> {
        let document = parse_query(query).unwrap();
        let DocumentOperations::Single(op) = &document.operations else {
            panic!("one operation");
        };
        let fields = root_fields(&document, &op.node.selection_set.node)?;
        Ok(fields.iter().map(|f| f.name.node.to_string()).collect())
    }

    #[test]
    fn fields_are_found_through_fragments_and_deep_nesting_is_refused() {
        assert_eq!(
            names("mutation { a ... on Mutation { b } ...F } fragment F on Mutation { c }"),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        let deep = format!(
            "mutation {{ {} x {} }}",
            "... on Mutation {".repeat(9),
            "}".repeat(9)
        );
        assert_eq!(names(&deep), Err(TooDeep));
        let shallow = format!(
            "mutation {{ {} x {} }}",
            "... on Mutation {".repeat(8),
            "}".repeat(8)
        );
        assert_eq!(names(&shallow), Ok(vec!["x".into()]));
    }

    #[test]
    fn a_fragment_spread_many_times_is_walked_once() {
        // Seven fragments each spreading the next thirty times: 30^7 visits if each spread
        // were followed.
        let mut query = String::from("mutation { ...F0 }");
        for i in 0..7 {
            let spreads = format!("...F{} ", i + 1).repeat(30);
            query.push_str(&format!(" fragment F{i} on Mutation {{ a{i} {spreads} }}"));
        }
        query.push_str(" fragment F7 on Mutation { last }");
        let found = names(&query).unwrap();
        assert_eq!(found.len(), 8, "{found:?}");
    }
}
