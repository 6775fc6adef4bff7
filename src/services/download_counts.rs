//! Download counts, honest and off the request path. A download that starts at byte 0 is
//! noted in memory; once a second (and at shutdown) the notes are written in one transaction.
//! One version is counted once per viewer and day — a user, or an anonymous client by its
//! address (IPv6 by its /64) — across replicas too, by a unique index on the events. Writing
//! counts does not make cached answers stale: counts shown may lag by the caches' time to live.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use chrono::NaiveDate;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use tokio::sync::Notify;
use uuid::Uuid;

use super::downloads::Grant;
use crate::{
    entities::{download_event, model, model_version},
    error::AppResult,
    state::AppState,
};

/// How often noted downloads are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Notes kept before a write is started early.
const MAX_PENDING: usize = 50_000;

/// A download waiting to be written, by (version, viewer, day).
type Key = (Uuid, String, NaiveDate);

struct Pending {
    model_id: Uuid,
    user_id: Option<Uuid>,
    bytes: i64,
    at: chrono::DateTime<chrono::Utc>,
}

/// The downloads noted since the last write.
#[derive(Default)]
pub struct DownloadCounter {
    pending: Mutex<HashMap<Key, Pending>>,
    full: Notify,
    /// Held by the flush under way: flushes run one at a time.
    flushing: tokio::sync::Mutex<()>,
}

impl DownloadCounter {
    /// Notes a download of the grant's version by its holder (or `client`, if anonymous).
    pub fn note(&self, grant: &Grant, client: Option<IpAddr>) {
        metrics::counter!("modelhub_downloads_total").increment(1);
        let at = super::now();
        let key = (
            grant.version.id,
            super::rate_limit::caller_key(grant.user_id, client),
            at.date_naive(),
        );
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.entry(key).or_insert(Pending {
            model_id: grant.model.id,
            user_id: grant.user_id,
            bytes: grant.version.size_bytes,
            at,
        });
        if pending.len() >= MAX_PENDING {
            self.full.notify_one();
        }
    }

    /// Writes what was noted; returns how many downloads were counted (repeats of a viewer's
    /// download the same day are not). On failure the notes are kept for the next write.
    /// Flushes run one at a time, so once one returns, every download noted before it was
    /// called is written (by it or by the flush it waited for).
    pub async fn flush(&self, state: &AppState) -> AppResult<u64> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if batch.is_empty() {
            return Ok(0);
        }
        match write(state, &batch).await {
            Ok(counted) => Ok(counted),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                for (key, note) in batch {
                    pending.entry(key).or_insert(note);
                }
                Err(e)
            }
        }
    }

    /// Writes the notes every [`FLUSH_EVERY`], or sooner when many are waiting, until the
    /// task is dropped.
    pub async fn run(state: AppState) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(FLUSH_EVERY) => {}
                () = state.downloads.full.notified() => {}
            }
            if let Err(e) = state.downloads.flush(&state).await {
                tracing::warn!(error = %e.cause().unwrap_or_else(|| e.message()), "download counts not written yet; retrying");
            }
        }
    }
}

async fn write(state: &AppState, batch: &HashMap<Key, Pending>) -> AppResult<u64> {
    let txn = state.db.begin().await?;
    let mut per_version: HashMap<Uuid, i64> = HashMap::new();
    let mut per_model: HashMap<Uuid, i64> = HashMap::new();
    for ((version_id, viewer, day), note) in batch {
        let inserted = download_event::Entity::insert(download_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            model_id: Set(note.model_id),
            version_id: Set(*version_id),
            user_id: Set(note.user_id),
            day: Set(*day),
            bytes: Set(note.bytes),
            created_at: Set(note.at),
            viewer_key: Set(Some(viewer.clone())),
        })
        .on_conflict(
            OnConflict::columns([
                download_event::Column::VersionId,
                download_event::Column::ViewerKey,
                download_event::Column::Day,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        if inserted > 0 {
            *per_version.entry(*version_id).or_default() += 1;
            *per_model.entry(note.model_id).or_default() += 1;
        }
    }
    for (id, n) in &per_version {
        model_version::Entity::update_many()
            .col_expr(
                model_version::Column::Downloads,
                Expr::col(model_version::Column::Downloads).add(*n),
            )
            .filter(model_version::Column::Id.eq(*id))
            .exec(&txn)
            .await?;
    }
    for (id, n) in &per_model {
        model::Entity::update_many()
            .col_expr(
                model::Column::Downloads,
                Expr::col(model::Column::Downloads).add(*n),
            )
            .filter(model::Column::Id.eq(*id))
            .exec(&txn)
            .await?;
    }
    // Not a change that makes cached answers stale (see the module's note).
    txn.commit().await?;
    Ok(per_version.values().map(|n| *n as u64).sum())
}

#[cfg(test)]
mod tests {
    use crate::services::rate_limit::caller_key;

    #[test]
    fn anonymous_viewers_are_keyed_by_address_and_ipv6_by_its_64() {
        let a = caller_key(None, Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = caller_key(None, Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        let c = caller_key(None, Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            caller_key(None, Some("::ffff:10.0.0.1".parse().unwrap())),
            "ip:10.0.0.1"
        );
        let user = uuid::Uuid::nil();
        assert_eq!(
            caller_key(Some(user), Some("10.0.0.1".parse().unwrap())),
            format!("user:{user}")
        );
    }
}
