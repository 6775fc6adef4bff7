//! Alias names: a model's named pointers to versions (`production`, `champion`, `staging-eu`).
//! An alias is named wherever a version is, so it can never be read as one: it starts with a
//! lower-case letter and holds only lower-case letters, digits, `-` and `_` (never the dots of
//! a semantic version), is not `main` (the Hugging Face name of the current version) and not a
//! 40-hex commit id.

use crate::error::{AppError, AppResult};

/// The longest alias name.
pub const MAX_LEN: usize = 64;

/// A valid alias name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AliasName(String);

impl AliasName {
    /// Parses an alias name; `field` names the argument in the error.
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let name = raw.trim();
        let refuse = |why: &str| Err(AppError::bad_input(field, format!("`{name}` {why}")));
        if name.is_empty() || name.len() > MAX_LEN {
            return refuse(&format!("must be 1 to {MAX_LEN} characters long"));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return refuse(
                "must start with a lower-case letter and hold only lower-case letters, digits, `-` and `_`",
            );
        }
        if name == "main" || super::hub_name::is_commit_id(name) {
            return refuse("would name a revision, not an alias");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AliasName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_never_read_as_versions_or_revisions() {
        for good in ["production", "champion", "staging-eu", "a", "canary_2"] {
            assert_eq!(AliasName::parse("alias", good).unwrap().as_str(), good);
        }
        let long = "a".repeat(MAX_LEN + 1);
        for bad in [
            "",
            "Production",
            "1.2.0",
            "v1.2.0",
            "2fast",
            "-x",
            "main",
            "prod/eu",
            "prod eu",
            "abcdefabcdefabcdefabcdefabcdefabcdefabcd",
            long.as_str(),
        ] {
            assert!(AliasName::parse("alias", bad).is_err(), "{bad:?}");
        }
    }
}
