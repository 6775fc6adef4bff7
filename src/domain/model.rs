//! Model metadata as users give it: names, frameworks, tags, free text and JSON documents.

use serde_json::Value;

use crate::error::{AppError, AppResult};

/// Most tags a model may carry.
pub const MAX_TAGS: usize = 20;
/// Longest tag.
pub const MAX_TAG_CHARS: usize = 50;
/// Largest metadata or metrics document (serialized).
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Longest description or changelog.
pub const MAX_TEXT_CHARS: usize = 20_000;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A model's display name: trimmed, 1–100 characters, no control characters or slashes.
pub fn name(field: &str, raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input(
            field,
            "must be 1 to 100 characters long",
        ));
    }
    if has_control(name) || name.contains('/') || name.contains('\\') {
        return Err(AppError::bad_input(
            field,
            "must not contain '/', '\\' or control characters",
        ));
    }
    Ok(name.to_owned())
}

/// A search phrase or name to look up: trimmed, at most 200 characters, no control characters;
/// blank means none.
pub fn lookup(field: &str, raw: Option<&str>) -> AppResult<Option<String>> {
    let Some(text) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > 200 {
        return Err(AppError::bad_input(field, "must be at most 200 characters"));
    }
    if has_control(text) {
        return Err(AppError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// A short keyword (framework, task type, license): trimmed, lower-cased, 1–64 characters.
pub fn keyword(field: &str, raw: &str) -> AppResult<String> {
    let word = raw.trim().to_lowercase();
    if word.is_empty() || word.chars().count() > 64 {
        return Err(AppError::bad_input(
            field,
            "must be 1 to 64 characters long",
        ));
    }
    if has_control(&word) {
        return Err(AppError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(word)
}

/// An optional keyword; blank means none.
pub fn optional_keyword(field: &str, raw: Option<&str>) -> AppResult<Option<String>> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| keyword(field, s))
        .transpose()
}

/// Free text (description, changelog): trimmed, bounded, no NUL; blank means none.
pub fn text(field: &str, raw: Option<&str>) -> AppResult<Option<String>> {
    let Some(text) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if text.contains('\0') {
        return Err(AppError::bad_input(
            field,
            "must not contain NUL characters",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters long"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// Tags: lower-cased, de-duplicated, each 1–50 characters of letters, digits and `-_.:+`,
/// at most 20.
pub fn tags(field: &str, raw: &[String]) -> AppResult<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for tag in raw {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            return Err(AppError::bad_input(
                field,
                format!("each tag must be 1 to {MAX_TAG_CHARS} characters long"),
            ));
        }
        if !tag
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+'))
        {
            return Err(AppError::bad_input(
                field,
                format!("tag `{tag}` may contain only letters, digits and - _ . : +"),
            ));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(tags)
}

/// A JSON object of bounded size (metadata, performance metrics); none means `{}`.
pub fn json_object(field: &str, raw: Option<Value>) -> AppResult<Value> {
    let value = raw.unwrap_or_else(|| Value::Object(Default::default()));
    if !value.is_object() {
        return Err(AppError::bad_input(field, "must be a JSON object"));
    }
    let serialized = value.to_string();
    if serialized.contains("\\u0000") {
        return Err(AppError::bad_input(
            field,
            "must not contain NUL characters",
        ));
    }
    if serialized.len() > MAX_JSON_BYTES {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_JSON_BYTES} bytes"),
        ));
    }
    Ok(value)
}
