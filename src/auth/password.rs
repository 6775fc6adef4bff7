//! Argon2id password hashing, run off the async runtime and at most one per core at a time
//! (each takes 19 MiB and a core for tens of milliseconds: a burst of logins waits its turn
//! instead of exhausting memory). Verification takes the same time for an unknown user as for
//! a wrong password: a dummy hash is checked instead.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::error::{AppError, AppResult};

/// Runs `work` on the blocking pool once one of the per-core permits is free.
async fn limited<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    let permits = PERMITS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from))
    });
    let _permit = permits.acquire().await.map_err(AppError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(AppError::internal)
}

/// Hashes a password with Argon2id and a random salt (PHC string format).
pub async fn hash(password: String) -> AppResult<String> {
    limited(move || hash_blocking(&password)).await?
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
    limited(move || {
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
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_runs_at_most_one_per_core_at_a_time() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..cores * 4).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            limited(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Long enough for the others to pile up behind the permits.
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for outcome in futures_util::future::join_all(jobs).await {
            outcome.unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=cores).contains(&most),
            "{most} at once on {cores} cores"
        );
    }

    #[tokio::test]
    async fn a_hash_verifies_and_a_wrong_password_or_missing_user_does_not() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(
            verify(Some(stored.clone()), "correct horse battery".into())
                .await
                .unwrap()
        );
        assert!(!verify(Some(stored), "wrong".into()).await.unwrap());
        assert!(!verify(None, "correct horse battery".into()).await.unwrap());
    }
}
