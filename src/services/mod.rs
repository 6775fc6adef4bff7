//! The domain services: they own the rules (visibility, ownership, workflow, transactions) and
//! are the only code that talks to the database and the blob store on a request's behalf.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod aliases;
pub mod api_tokens;
pub mod approvals;
pub mod audit;
pub mod blobs;
pub mod change_cache;
pub mod change_feed;
pub mod download_counts;
pub mod downloads;
pub mod drafts;
pub mod events;
pub mod gate;
pub mod hub;
pub mod hub_commits;
pub mod inference;
pub mod inspection;
pub mod leases;
pub mod lfs;
pub mod lineage;
pub mod maintenance;
pub mod models;
pub mod pagination;
pub mod rate_limit;
pub mod resumable;
pub mod version_facts;
pub mod version_upload;
pub mod versions;
pub mod webhook_delivery;
pub mod webhooks;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseTransaction, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};

use crate::{error::AppResult, state::AppState};

/// Begins a transaction that reads, then writes what it read. On SQLite it takes the write
/// lock first: a transaction that read before a concurrent change committed cannot write
/// after it (SQLITE_BUSY_SNAPSHOT, an internal error), while one that waits for the lock
/// reads what that change left. PostgreSQL transactions lock the rows they need.
pub async fn begin_write(state: &AppState) -> AppResult<DatabaseTransaction> {
    Ok(state
        .db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?)
}

/// Makes the transactions that take the same `key` of lock class `class` wait for each other
/// until they end, for checks that read before they write: PostgreSQL's transaction advisory
/// locks, so `db` must be a transaction; on SQLite, one begun by [`begin_write`] holds the
/// database's write lock already.
pub(super) async fn serialize<C: ConnectionTrait>(db: &C, class: i32, key: &str) -> AppResult<()> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        [class.into(), key.into()],
    ))
    .await?;
    Ok(())
}

/// Commits a transaction that changed what catalog reads show, and makes the caches' answers
/// computed before it stale (see [`crate::state::ChangeCounter`]).
pub async fn commit_change(state: &AppState, txn: DatabaseTransaction) -> AppResult<()> {
    txn.commit().await?;
    state.changes.bump();
    Ok(())
}

/// Commits a change to accounts or credentials and makes everything cached stale, the
/// credentials included.
pub async fn commit_account_change(state: &AppState, txn: DatabaseTransaction) -> AppResult<()> {
    txn.commit().await?;
    state.changes.bump_accounts();
    Ok(())
}

/// The current time, at the microsecond precision both databases keep, so values read back
/// compare equal to values written.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
