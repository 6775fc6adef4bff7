//! The paths of a version's files, and the version's digest over them.
//!
//! A path is relative and `/`-separated (`tokenizer/vocab.json`): no leading or trailing `/`,
//! no empty, `.` or `..` segments, no backslashes, NUL or other control characters, at most
//! [`MAX_SEGMENT_BYTES`] bytes a segment and [`MAX_PATH_BYTES`] in all. Within a version no
//! two paths may differ only in case (they would collide on case-insensitive disks), nor may a
//! path be both a file and a folder of other files.
//!
//! The **digest** of a version is the SHA-256 (lower-case hex) of its manifest: one line per
//! file, sorted by path (byte order), each `<sha256> <size> <path>\n` with the file's
//! lower-case hex SHA-256 and its size in decimal bytes. Two versions with the same files at
//! the same paths have the same digest, whatever order they were uploaded in.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// Longest segment of a path, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// A valid file path within a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilePath(String);

impl FilePath {
    /// Checks `raw`; `field` names the input in the error, which also names the path.
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let refuse = |why: &str| {
            AppError::bad_input(
                field,
                format!("`{}` is not a valid file path: {why}", printable(raw)),
            )
        };
        if raw.is_empty() {
            return Err(refuse("it is empty"));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(refuse(&format!("it is longer than {MAX_PATH_BYTES} bytes")));
        }
        if raw.contains('\\') {
            return Err(refuse("use `/` to separate folders, not `\\`"));
        }
        if raw.chars().any(char::is_control) {
            return Err(refuse("it contains a control character"));
        }
        if raw.starts_with('/') {
            return Err(refuse("it must be relative (no leading `/`)"));
        }
        for segment in raw.split('/') {
            match segment {
                "" => return Err(refuse("it has an empty segment")),
                "." | ".." => return Err(refuse("`.` and `..` segments are not allowed")),
                s if s.len() > MAX_SEGMENT_BYTES => {
                    return Err(refuse(&format!(
                        "a segment is longer than {MAX_SEGMENT_BYTES} bytes"
                    )));
                }
                _ => {}
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// The path as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which paths differing only in case collide.
    pub fn case_key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The file name (the last segment).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for FilePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The path for a file uploaded without one: its file name as the client sent it, made
/// valid (folders dropped, control characters and backslashes replaced), else `fallback`.
pub fn from_filename(filename: Option<&str>, fallback: &str) -> FilePath {
    let name: String = filename
        .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f))
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let mut end = name.len().min(MAX_SEGMENT_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = name[..end].trim();
    FilePath::parse("file", name).unwrap_or_else(|_| FilePath(fallback.to_owned()))
}

/// Checks a version's paths together: none equal to another but for case, and none a folder
/// of another (`a` and `a/b`). `field` names the input in the error.
pub fn check_set<'a>(field: &str, paths: impl IntoIterator<Item = &'a FilePath>) -> AppResult<()> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut all: Vec<&FilePath> = Vec::new();
    for path in paths {
        if !seen.insert(path.case_key()) {
            return Err(AppError::bad_input(
                field,
                format!("`{path}` is given twice (paths may not differ only in case)"),
            ));
        }
        all.push(path);
    }
    let folders: HashSet<String> = all
        .iter()
        .flat_map(|p| {
            let key = p.case_key();
            key.match_indices('/')
                .map(|(i, _)| key[..i].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    if let Some(clash) = all.iter().find(|p| folders.contains(&p.case_key())) {
        return Err(AppError::bad_input(
            field,
            format!("`{clash}` is both a file and a folder of other files"),
        ));
    }
    Ok(())
}

/// One line of a manifest: a file's path, SHA-256 (hex) and size.
pub struct ManifestEntry<'a> {
    pub path: &'a str,
    pub sha256: &'a str,
    pub size: u64,
}

/// The digest of a version's files (see the module documentation).
pub fn digest<'a>(entries: impl IntoIterator<Item = ManifestEntry<'a>>) -> String {
    let mut entries: Vec<ManifestEntry<'a>> = entries.into_iter().collect();
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut hasher = Sha256::new();
    for entry in entries {
        hasher.update(format!("{} {} {}\n", entry.sha256, entry.size, entry.path).as_bytes());
    }
    crate::auth::api_token::hex(&hasher.finalize())
}

/// `raw` with control characters escaped, for error messages.
fn printable(raw: &str) -> String {
    let shown: String = raw.chars().take(80).collect();
    let shown = shown.escape_debug().to_string();
    if raw.chars().count() > 80 {
        format!("{shown}…")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        match FilePath::parse("files", raw) {
            Err(AppError::BadInput { field, message }) => {
                assert_eq!(field, "files");
                message
            }
            other => panic!("`{raw}` was not refused: {other:?}"),
        }
    }

    #[test]
    fn paths_are_relative_slash_separated_and_bounded() {
        for ok in [
            "config.json",
            "tokenizer/vocab.json",
            "a/b/c.d",
            "ünï.json",
            "a b",
        ] {
            assert_eq!(FilePath::parse("files", ok).unwrap().as_str(), ok);
        }
        let long_segment = "x".repeat(256);
        let long_path = vec!["y".repeat(255); 5].join("/");
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "../a",
            "a/..",
            "a\\b",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
            long_segment.as_str(),
            long_path.as_str(),
        ] {
            let message = refused(bad);
            let shown: String = bad
                .chars()
                .take(10)
                .collect::<String>()
                .escape_debug()
                .to_string();
            assert!(message.contains(&shown), "{message} names {bad:?}");
        }
        assert_eq!(
            FilePath::parse("f", &"z".repeat(255))
                .unwrap()
                .file_name()
                .len(),
            255
        );
    }

    #[test]
    fn a_set_refuses_case_twins_and_files_that_are_folders() {
        let p = |s: &str| FilePath::parse("files", s).unwrap();
        assert!(check_set("files", &[p("a/b.json"), p("a/c.json"), p("b")]).is_ok());
        let twins = check_set("files", &[p("Config.json"), p("config.JSON")]).unwrap_err();
        assert!(
            twins.message().contains("config.JSON"),
            "{}",
            twins.message()
        );
        let folder = check_set("files", &[p("a/B/c"), p("a/b")]).unwrap_err();
        assert!(folder.message().contains("`a/b`"), "{}", folder.message());
    }

    #[test]
    fn uploaded_names_become_valid_paths() {
        assert_eq!(
            from_filename(Some("C:\\x\\model.pkl"), "model").as_str(),
            "model.pkl"
        );
        assert_eq!(
            from_filename(Some("../../etc/passwd"), "model").as_str(),
            "passwd"
        );
        assert_eq!(from_filename(Some("a\nb.bin"), "model").as_str(), "a_b.bin");
        assert_eq!(from_filename(Some(".."), "model.bin").as_str(), "model.bin");
        assert_eq!(from_filename(None, "model.bin").as_str(), "model.bin");
        assert_eq!(
            from_filename(Some(&"é".repeat(200)), "m").as_str().len(),
            254
        );
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_sorted_manifest() {
        let a = ManifestEntry {
            path: "b.bin",
            sha256: "11",
            size: 2,
        };
        let b = ManifestEntry {
            path: "a/x.json",
            sha256: "22",
            size: 30,
        };
        let expected =
            crate::auth::api_token::hex(&Sha256::digest(b"22 30 a/x.json\n11 2 b.bin\n"));
        assert_eq!(digest([a, b]), expected);
        let again = digest([
            ManifestEntry {
                path: "a/x.json",
                sha256: "22",
                size: 30,
            },
            ManifestEntry {
                path: "b.bin",
                sha256: "11",
                size: 2,
            },
        ]);
        assert_eq!(again, expected, "order does not matter");
    }
}
