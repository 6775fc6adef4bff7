//! Argon2id password hashing, run off the async runtime. Verification takes the same time for
//! an unknown user as for a wrong password: a dummy hash is checked instead.

use std::sync::OnceLock;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::error::{AppError, AppResult};

/// Hashes a password with Argon2id and a random salt (PHC string format).
pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(AppError::internal)?
}

fn hash_blocking(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(e.to_string()))
}

/// A hash of a random password, verified against when the user does not exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(uuid::Uuid::new_v4().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Checks `password` against `stored` (or against a dummy hash when there is no user), in
/// constant time and off the runtime. `false` for a missing user.
pub async fn verify(stored: Option<String>, password: String) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let exists = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let matches = PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        exists && matches
    })
    .await
    .map_err(AppError::internal)
}
