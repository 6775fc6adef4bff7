//! Opening the database and applying migrations. SQLite runs in WAL mode with
//! `synchronous=NORMAL` (durable across process crashes) and a busy timeout, so concurrent
//! writers wait instead of failing.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use secrecy::{ExposeSecret, SecretString};

/// Opens a connection pool to `url` (`sqlite://…` or `postgres://…`).
pub async fn connect(url: &SecretString) -> Result<DatabaseConnection, DbErr> {
    let raw = url.expose_secret();
    if let Some(path) = sqlite_path(raw)
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut options = ConnectOptions::new(raw.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(30))
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                // Reads through the OS page cache instead of copying into each connection's.
                .pragma("mmap_size", "268435456")
        });
    if raw.starts_with("sqlite:") {
        // A local file does not drop connections: skip the ping before each checkout.
        options
            .max_connections(8)
            .min_connections(1)
            .test_before_acquire(false);
    } else {
        options.max_connections(32).min_connections(1);
    }
    Database::connect(options).await
}

/// The file path of an SQLite URL, if it names a file.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Applies every pending migration, in one transaction holding a lock only one process gets at
/// a time (PostgreSQL: an advisory lock; SQLite: the write lock of an immediate transaction),
/// so replicas starting together apply them once: the others wait, then find nothing pending.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
    }
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// The PostgreSQL advisory lock key migrations hold (any constant the hub uses for nothing else).
const MIGRATION_LOCK: i64 = 0x6d6f_6465_6c68_7562;
