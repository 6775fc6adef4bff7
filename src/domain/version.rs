//! Model versions: semantic versions with an optional leading `v`, and a sort key whose byte
//! order is semver precedence, so the database can order and compare them.

use crate::error::{AppError, AppResult};

/// A parsed version, e.g. `v1.2.0-rc.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    label: String,
    semver: semver::Version,
}

impl Version {
    /// Parses `1.2.3`, `v1.2.3`, `1.2.3-rc.1` … (build metadata is kept in the label but does
    /// not make a different version).
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let label = raw.trim();
        if label.is_empty() || label.len() > 64 {
            return Err(AppError::bad_input(
                field,
                "must be 1 to 64 characters long",
            ));
        }
        let bare = label
            .strip_prefix('v')
            .or_else(|| label.strip_prefix('V'))
            .unwrap_or(label);
        let semver = semver::Version::parse(bare).map_err(|e| {
            AppError::bad_input(
                field,
                format!("must be a semantic version such as v1.0.0 ({e})"),
            )
        })?;
        let version = Self {
            label: label.to_owned(),
            semver,
        };
        if version.sort_key().len() > 255 {
            return Err(AppError::bad_input(
                field,
                "has too many pre-release identifiers",
            ));
        }
        Ok(version)
    }

    /// The version after this one when nobody names one: the release of a pre-release
    /// (`1.2.0-rc.1` → `1.2.0`), else the next patch (`v1.2.0` → `v1.2.1`), with the same
    /// leading `v` or none.
    pub fn next_patch(&self) -> Self {
        let mut semver =
            semver::Version::new(self.semver.major, self.semver.minor, self.semver.patch);
        if self.semver.pre.is_empty() {
            semver.patch += 1;
        }
        let prefix = if self.label.starts_with(['v', 'V']) {
            "v"
        } else {
            ""
        };
        Self {
            label: format!("{prefix}{semver}"),
            semver,
        }
    }

    /// The version as the user wrote it (trimmed).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A string whose byte order is semver precedence: zero-padded numbers, then the
    /// pre-release identifiers (numeric ones padded and ranked before alphanumeric ones), with a
    /// release ranking after all of its pre-releases.
    pub fn sort_key(&self) -> String {
        let v = &self.semver;
        let mut key = format!("{:020}.{:020}.{:020}", v.major, v.minor, v.patch);
        if v.pre.is_empty() {
            key.push('~');
        } else {
            key.push('-');
            for (i, ident) in v.pre.as_str().split('.').enumerate() {
                if i > 0 {
                    // A space sorts before every identifier character, so a shorter list of
                    // otherwise equal identifiers ranks first, as semver requires.
                    key.push(' ');
                }
                match ident.parse::<u64>() {
                    Ok(n) => key.push_str(&format!("0{n:020}")),
                    Err(_) => {
                        key.push('1');
                        key.push_str(ident);
                    }
                }
            }
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    /// The sort key of a version the test expects to parse; a parse failure fails the test.
    fn key(raw: &str) -> String {
        Version::parse("version", raw)
            .unwrap_or_else(|e| panic!("`{raw}` does not parse: {}", e.message()))
            .sort_key()
    }

    #[test]
    fn sort_key_follows_semver_precedence() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "v1.0.0",
            "1.0.1",
            "1.2.0",
            "1.10.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(key(pair[0]) < key(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn the_next_patch_follows_the_highest_version() {
        let next = |raw: &str| {
            Version::parse("version", raw)
                .unwrap_or_else(|e| panic!("`{raw}` does not parse: {}", e.message()))
                .next_patch()
                .label()
                .to_owned()
        };
        assert_eq!(next("v1.2.0"), "v1.2.1");
        assert_eq!(next("1.9.9"), "1.9.10");
        assert_eq!(next("2.0.0-rc.1"), "2.0.0");
        assert_eq!(next("1.0.0+build.5"), "1.0.1");
    }

    #[test]
    fn leading_v_is_the_same_version() {
        assert_eq!(key("v1.2.3"), key("1.2.3"));
        assert!(Version::parse("version", "1.2").is_err());
        assert!(Version::parse("version", "latest").is_err());
    }
}
