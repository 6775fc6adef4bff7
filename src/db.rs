//! Opening the database and applying migrations. SQLite runs in WAL mode with
//! `synchronous=NORMAL` (durable across process crashes) and a busy timeout, so concurrent
//! writers wait instead of failing.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DbErr,
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

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
