//! Names in the Hugging Face protocol. A model is the repository `owner/slug`: its slug is a
//! repository name made from its name when it is created, unique per owner (ignoring case)
//! and never changed after. A version is a commit: its id is 40 hex characters derived from
//! the version's id and digest, so it is stable, and unique even between versions with the
//! same files.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The longest repository name the Hugging Face client accepts.
pub const MAX_SLUG: usize = 96;

/// Whether `name` is a repository name as the client validates it: 1 to 96 ASCII letters,
/// digits, `_`, `.` and `-`, starting and ending with a letter, digit or `_`, with no `--` or
/// `..`, not ending in `.git`.
pub fn is_repo_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    (1..=MAX_SLUG).contains(&name.len())
        && name.chars().all(|c| word(c) || c == '.' || c == '-')
        && name.starts_with(word)
        && name.ends_with(word)
        && !name.contains("--")
        && !name.contains("..")
        && !name.ends_with(".git")
}

/// The repository name made from a model name: other characters become `-`, runs of `-` and
/// `.` shrink to one, the ends are trimmed, at most [`MAX_SLUG`] characters (`model` when
/// nothing is left).
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            c
        } else {
            '-'
        };
        if (c == '-' || c == '.') && out.ends_with(['-', '.']) {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_matches(['-', '.']).to_owned();
    out.truncate(MAX_SLUG);
    let mut out = out.trim_end_matches(['-', '.']).to_owned();
    if out.ends_with(".git") {
        out.replace_range(out.len() - 4.., "-git");
    }
    if out.is_empty() {
        out.push_str("model");
    }
    out
}

/// The `n`th candidate when a slug is taken: `base-2`, `base-3`…, within [`MAX_SLUG`].
pub fn numbered(base: &str, n: usize) -> String {
    let suffix = format!("-{n}");
    let mut head = base.to_owned();
    head.truncate(MAX_SLUG - suffix.len());
    format!("{}{suffix}", head.trim_end_matches(['-', '.']))
}

/// A version's commit id: the first 40 hex characters of the SHA-256 of
/// `"modelhub commit\n<version id>\n<digest>\n"`.
pub fn commit_id(version_id: Uuid, digest: &str) -> String {
    let seed = format!("modelhub commit\n{version_id}\n{digest}\n");
    crate::auth::api_token::hex(&Sha256::digest(seed.as_bytes()))[..40].to_owned()
}

/// Whether `revision` has the form of a commit id (40 lower-case hex characters).
pub fn is_commit_id(revision: &str) -> bool {
    revision.len() == 40
        && revision
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_repository_names() {
        for (name, expected) in [
            ("My Model v2", "My-Model-v2"),
            ("  résumé..parser  ", "r-sum-parser"),
            ("--a--b--", "a-b"),
            ("x.git", "x-git"),
            ("日本語", "model"),
            ("snake_case.name", "snake_case.name"),
        ] {
            assert_eq!(slug(name), expected, "{name}");
            assert!(is_repo_name(&slug(name)), "{name}");
        }
        let long = slug(&"a ".repeat(200));
        assert!(long.len() <= MAX_SLUG && is_repo_name(&long));
        let again = numbered(&"b".repeat(96), 12);
        assert_eq!(again.len(), MAX_SLUG);
        assert!(again.ends_with("b-12") && is_repo_name(&again));
    }

    #[test]
    fn repository_names_follow_the_clients_rules() {
        for good in ["a", "Foo-BAR_foo.bar123", "_x_", "a.b-c"] {
            assert!(is_repo_name(good), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a-",
            "a--b",
            "a..b",
            "a.git",
            "a b",
            "é",
            &"a".repeat(97),
        ] {
            assert!(!is_repo_name(bad), "{bad}");
        }
    }

    #[test]
    fn commit_ids_are_stable_and_tell_versions_apart() {
        let digest = "ab".repeat(32);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(commit_id(a, &digest), commit_id(a, &digest));
        assert_ne!(commit_id(a, &digest), commit_id(b, &digest));
        assert!(is_commit_id(&commit_id(a, &digest)));
        assert!(!is_commit_id("v1.0.0") && !is_commit_id(&"A".repeat(40)));
    }
}
