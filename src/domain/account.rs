//! Usernames, email addresses and passwords.

use crate::error::{AppError, AppResult};

/// A username: 3–39 characters of `a-z 0-9 - _ .`, starting with a letter or digit; stored in
/// lower case so that `Alice` and `alice` are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Validates and normalises a username.
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let name = raw.trim().to_lowercase();
        if !(3..=39).contains(&name.chars().count()) {
            return Err(AppError::bad_input(
                field,
                "must be 3 to 39 characters long",
            ));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(AppError::bad_input(
                field,
                "must start with a letter or a digit",
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(AppError::bad_input(
                field,
                "may contain only letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(Self(name))
    }

    /// Validates the name of a new account: also never a UUID, which download addresses
    /// would read as a version id (names taken before this rule stay usable).
    pub fn parse_new(field: &str, raw: &str) -> AppResult<Self> {
        let name = Self::parse(field, raw)?;
        if uuid::Uuid::parse_str(&name.0).is_ok() {
            return Err(AppError::bad_input(
                field,
                "may not be a UUID (download addresses would read it as a version id)",
            ));
        }
        Ok(name)
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, trimmed and lower-cased; a light syntactic check (`local@domain.tld`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates and normalises an email address.
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let email = raw.trim().to_lowercase();
        let invalid = || AppError::bad_input(field, "is not a valid email address");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy: 8–256 characters, not a well-known password, not the
/// username.
pub struct Password(String);

const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyui",
    "qwerty123",
    "iloveyou",
    "11111111",
    "00000000",
    "abc12345",
    "letmein1",
    "welcome1",
    "passw0rd",
    "admin123",
    "changeme",
];

impl Password {
    /// Checks a new password against the policy.
    pub fn parse(field: &str, raw: String, username: &Username) -> AppResult<Self> {
        let length = raw.chars().count();
        if length == 0 {
            return Err(AppError::bad_input(field, "must not be empty"));
        }
        if length < 8 {
            return Err(AppError::bad_input(
                field,
                "must be at least 8 characters long",
            ));
        }
        if length > 256 {
            return Err(AppError::bad_input(
                field,
                "must be at most 256 characters long",
            ));
        }
        let lower = raw.to_lowercase();
        if COMMON_PASSWORDS.contains(&lower.as_str()) || raw.chars().all(|c| raw.starts_with(c)) {
            return Err(AppError::bad_input(field, "is too easy to guess"));
        }
        if lower.contains(username.as_str()) {
            return Err(AppError::bad_input(field, "must not contain the username"));
        }
        Ok(Self(raw))
    }

    /// The password, to be hashed.
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Username;

    #[test]
    fn a_new_username_is_never_a_version_id() {
        for id in [
            "0192f1a2-3b4c-7d5e-8f90-a1b2c3d4e5f6",
            "0192f1a23b4c7d5e8f90a1b2c3d4e5f6",
        ] {
            assert!(Username::parse_new("username", id).is_err(), "{id}");
            assert!(
                Username::parse("username", id).is_ok(),
                "an existing name: {id}"
            );
        }
        assert_eq!(
            Username::parse("username", " Team-Vision.2 ")
                .unwrap()
                .as_str(),
            "team-vision.2"
        );
    }
}
