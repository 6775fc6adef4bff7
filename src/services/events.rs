//! Change events: what happened to a model, for the systems and front-ends that react to it.
//! A change writes its event in its own transaction (the outbox, `events`), and there queues
//! it for every webhook that wants it ([`super::webhooks::enqueue`]), so an event exists
//! exactly when its change does. The live feed ([`pump`]) reads the events every replica
//! writes back in order and hands each once to this replica's subscriptions.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{
    ActiveModelTrait,
    ActiveValue::NotSet,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Set,
    sea_query::{Expr, ExprTrait},
};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{
    entities::{
        enums::{DeliveryStatus, EventKind, InspectionStatus},
        event, model, model_version, user, webhook_delivery,
    },
    error::AppResult,
    state::AppState,
};

/// What one change event says.
pub struct Change<'a> {
    pub kind: EventKind,
    /// The model it happened to, as it is after the change.
    pub model: &'a model::Model,
    /// The version it happened to, if one.
    pub version: Option<&'a model_version::Model>,
    /// Who made the change (`None`: the hub itself, e.g. a re-inspection).
    pub actor: Option<Uuid>,
    /// What else a receiver needs to know, by event type.
    pub data: Value,
}

/// The name of an event type, as webhook bodies and headers give it.
pub fn type_name(kind: EventKind) -> String {
    sea_orm::ActiveEnum::to_value(&kind)
}

/// A stored enumeration's GraphQL name (`approved` → `APPROVED`).
fn enum_name<E: sea_orm::ActiveEnum<Value = String>>(value: &E) -> String {
    value.to_value().to_uppercase()
}

/// A version as event bodies describe it.
fn version_json(version: &model_version::Model) -> Value {
    json!({
        "id": version.id,
        "version": version.version,
        "digest": version.digest,
        "sizeBytes": version.size_bytes,
        "fileCount": version.file_count,
        "inspectionStatus": enum_name(&version.inspection_status),
        "withdrawn": version.withdrawn_at.is_some(),
    })
}

/// Writes the event of a change, in the change's transaction, and queues it for the webhooks
/// that want it.
pub async fn record<C: ConnectionTrait>(db: &C, change: Change<'_>) -> AppResult<()> {
    record_all(db, &[change]).await
}

/// Writes the events of changes to one model, in the changes' transaction, and queues them for
/// the webhooks that want them (the owner's name and the model's webhooks are read once).
async fn record_all<C: ConnectionTrait>(db: &C, changes: &[Change<'_>]) -> AppResult<()> {
    let Some(model) = changes.first().map(|c| c.model) else {
        return Ok(());
    };
    debug_assert!(changes.iter().all(|c| c.model.id == model.id));
    let owner = user::Entity::find_by_id(model.owner_id)
        .select_only()
        .column(user::Column::Username)
        .into_tuple::<String>()
        .one(db)
        .await?;
    let mut events = Vec::with_capacity(changes.len());
    for change in changes {
        let id = Uuid::now_v7();
        let at = super::now();
        let payload = json!({
            "id": id,
            "type": type_name(change.kind),
            "occurredAt": at,
            "actorId": change.actor,
            "model": {
                "id": model.id,
                "owner": owner,
                "name": model.name,
                "approvalStatus": enum_name(&model.approval_status),
            },
            "version": change.version.map(version_json),
            "data": change.data,
        });
        let event = event::ActiveModel {
            seq: NotSet,
            id: Set(id),
            kind: Set(change.kind),
            model_id: Set(Some(model.id)),
            version_id: Set(change.version.map(|v| v.id)),
            owner_id: Set(Some(model.owner_id)),
            actor_id: Set(change.actor),
            payload: Set(payload),
            created_at: Set(at),
        }
        .insert(db)
        .await?;
        events.push(event);
    }
    super::webhooks::enqueue(db, model.id, &events).await
}

/// Writes the events of a version just stored by `actor`: it was created, and its
/// inspection (made before it was) finished.
pub async fn version_stored<C: ConnectionTrait>(
    db: &C,
    model: &model::Model,
    version: &model_version::Model,
    actor: Uuid,
) -> AppResult<()> {
    let created = Change {
        kind: EventKind::VersionCreated,
        model,
        version: Some(version),
        actor: Some(actor),
        data: json!({ "current": model.current_version_id == Some(version.id) }),
    };
    record_all(db, &[created, inspected(model, version, None)]).await
}

/// The event of a version's finished inspection.
pub fn inspected<'a>(
    model: &'a model::Model,
    version: &'a model_version::Model,
    previous: Option<InspectionStatus>,
) -> Change<'a> {
    Change {
        kind: EventKind::VersionInspected,
        model,
        version: Some(version),
        actor: None,
        data: json!({
            "status": enum_name(&version.inspection_status),
            "previousStatus": previous.map(|p| enum_name(&p)),
        }),
    }
}

/// Most events one statement of [`purge`] removes, so no transaction grows with the backlog.
const PURGE_BATCH: u64 = 10_000;

/// Removes the events older than the retention (`MODELHUB_EVENT_RETENTION_DAYS`, never less
/// than the retry window) that no delivery still waits to send, with their delivery log;
/// returns how many. The newest event stays, so the sequence goes on from it.
pub async fn purge(state: &AppState) -> AppResult<u64> {
    let options = &state.config.webhooks;
    let keep = chrono::Duration::from_std(options.event_retention.max(options.retry_window))
        .unwrap_or(chrono::Duration::MAX);
    let Some(cutoff) = super::now().checked_sub_signed(keep) else {
        return Ok(0);
    };
    let mut purged = 0;
    loop {
        let pending = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::EventSeq)
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .into_query();
        let newest = event::Entity::find()
            .select_only()
            .expr(Expr::col(event::Column::Seq).max())
            .into_query();
        let old = event::Entity::find()
            .select_only()
            .column(event::Column::Seq)
            .filter(event::Column::CreatedAt.lt(cutoff))
            .filter(event::Column::Seq.not_in_subquery(pending))
            .filter(event::Column::Seq.not_in_subquery(newest))
            .order_by_asc(event::Column::Seq)
            .limit(PURGE_BATCH)
            .into_query();
        let removed = event::Entity::delete_many()
            .filter(event::Column::Seq.in_subquery(old))
            .exec(&state.db)
            .await?
            .rows_affected;
        purged += removed;
        if removed < PURGE_BATCH {
            return Ok(purged);
        }
    }
}

/// Most events one read of the feed takes.
const BATCH: u64 = 500;
/// How often the feed looks for events when no change wakes it (another replica's events,
/// when no Redis announces them).
const POLL: Duration = Duration::from_secs(1);
/// How long a hole in the sequence is waited for: on PostgreSQL a transaction may commit its
/// event after a later one did, or roll back and leave the hole for good.
const HOLE_WAIT: Duration = Duration::from_secs(10);
/// Events kept for subscribers that fall behind; a slower one misses the oldest.
const BUFFERED: usize = 1024;

/// This replica's subscriptions' source of events.
pub struct LiveEvents(broadcast::Sender<Arc<event::Model>>);

impl Default for LiveEvents {
    fn default() -> Self {
        Self(broadcast::channel(BUFFERED).0)
    }
}

impl LiveEvents {
    /// The events written from now on, by any replica.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<event::Model>> {
        self.0.subscribe()
    }
}

/// Hands every event written from now on to this replica's subscriptions, in order and each
/// once; woken by every change (made here or announced by another replica) and every
/// second. Runs until dropped.
pub async fn pump(state: AppState) {
    let mut changes = state.changes.watch();
    let mut feed = loop {
        match Feed::start(&state).await {
            Ok(feed) => break feed,
            Err(e) => {
                tracing::warn!(error = %e.cause().unwrap_or_else(|| e.message()), "cannot start the event feed");
                tokio::time::sleep(POLL).await;
            }
        }
    };
    loop {
        if let Err(e) = feed.read(&state).await {
            tracing::warn!(error = %e.cause().unwrap_or_else(|| e.message()), "cannot read events");
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Where the feed stands: every event up to `below` was handed on (or its hole given up),
/// and of those after it, `seen` were.
struct Feed {
    below: i64,
    seen: BTreeSet<i64>,
    holes: HashMap<i64, Instant>,
}

impl Feed {
    /// A feed of the events after the last one written.
    async fn start(state: &AppState) -> AppResult<Self> {
        let last: Option<Option<i64>> = event::Entity::find()
            .select_only()
            .expr(Expr::col(event::Column::Seq).max())
            .into_tuple()
            .one(&state.db)
            .await?;
        Ok(Self {
            below: last.flatten().unwrap_or(0),
            seen: BTreeSet::new(),
            holes: HashMap::new(),
        })
    }

    /// Hands on the events not handed on yet.
    async fn read(&mut self, state: &AppState) -> AppResult<()> {
        let mut after = self.below;
        loop {
            let rows = event::Entity::find()
                .filter(event::Column::Seq.gt(after))
                .order_by_asc(event::Column::Seq)
                .limit(BATCH)
                .all(&state.db)
                .await?;
            let full = rows.len() as u64 == BATCH;
            for row in rows {
                after = row.seq;
                if self.seen.insert(row.seq) {
                    // No subscriber, no one to tell.
                    let _ = state.events.0.send(Arc::new(row));
                }
            }
            self.advance(Instant::now());
            if !full {
                return Ok(());
            }
        }
    }

    /// Moves `below` over the events seen and the holes waited for long enough.
    fn advance(&mut self, now: Instant) {
        let Some(&top) = self.seen.last() else {
            return;
        };
        while self.below < top {
            let next = self.below + 1;
            if !self.seen.remove(&next) {
                let noticed = *self.holes.entry(next).or_insert(now);
                if now.duration_since(noticed) < HOLE_WAIT {
                    return;
                }
            }
            self.holes.remove(&next);
            self.below = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(below: i64, seen: &[i64]) -> Feed {
        Feed {
            below,
            seen: seen.iter().copied().collect(),
            holes: HashMap::new(),
        }
    }

    #[test]
    fn the_feed_moves_over_what_it_saw_in_order() {
        let mut f = feed(4, &[5, 6, 7]);
        f.advance(Instant::now());
        assert_eq!(f.below, 7);
        assert!(f.seen.is_empty());
    }

    #[test]
    fn a_hole_holds_the_feed_until_it_was_waited_for() {
        let start = Instant::now();
        let mut f = feed(4, &[5, 7, 8]);
        f.advance(start);
        assert_eq!(f.below, 5, "6 may still commit");
        assert_eq!(f.seen, BTreeSet::from([7, 8]));
        f.advance(start + HOLE_WAIT / 2);
        assert_eq!(f.below, 5);
        // 6 committed late: it is read and handed on, and the feed moves over it.
        f.seen.insert(6);
        f.advance(start + HOLE_WAIT / 2);
        assert_eq!(f.below, 8);
        assert!(f.holes.is_empty());
    }

    #[test]
    fn a_hole_that_never_fills_is_given_up() {
        let start = Instant::now();
        let mut f = feed(0, &[2]);
        f.advance(start);
        assert_eq!(f.below, 0);
        f.advance(start + HOLE_WAIT);
        assert_eq!(f.below, 2);
        assert!(f.holes.is_empty() && f.seen.is_empty());
    }
}
