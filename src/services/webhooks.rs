//! Webhooks: owners subscribe a receiver URL to a model's events, administrators to every
//! model's. Each event a webhook wants is queued for it in the event's own transaction
//! ([`enqueue`]); [`super::webhook_delivery`] sends the queue off the request path. A secret,
//! shown once when made or rotated, signs every delivery.

use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, Set, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::pagination::{Cursor, Page, newest_first};
use crate::{
    auth::{Scope, Viewer},
    domain::webhook_url::WebhookUrl,
    entities::{
        enums::{DeliveryStatus, EventKind},
        event, user, webhook, webhook_attempt, webhook_delivery,
    },
    error::{AppError, AppResult},
    services::access,
    state::AppState,
};

/// Most webhooks one model may have, and most global ones.
const MAX_PER_SCOPE: u64 = 20;
/// The lock class of webhook creations ("WHKS"; see [`super::serialize`]).
const SCOPE_LOCKS: i32 = 0x5748_4b53;
/// The longest description.
const MAX_DESCRIPTION: usize = 500;

/// A webhook to make.
#[derive(Debug, Default)]
pub struct NewWebhook {
    /// The model whose events it receives; `None`: every model's (administrators).
    pub model_id: Option<Uuid>,
    pub url: String,
    /// The event types it wants; empty: all.
    pub events: Vec<EventKind>,
    pub description: Option<String>,
}

/// Changes to a webhook (`None`: unchanged).
#[derive(Debug, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<EventKind>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// A secret to sign deliveries with: 32 random bytes, hex, with a prefix that names it.
fn new_secret() -> String {
    format!(
        "whsec_{}",
        crate::auth::api_token::hex(&rand::random::<[u8; 32]>())
    )
}

/// The event types a webhook wants, as stored (sorted, each once; a ping is not one to ask
/// for).
fn events_json(field: &str, events: &[EventKind]) -> AppResult<serde_json::Value> {
    if events.contains(&EventKind::Ping) {
        return Err(AppError::bad_input(
            field,
            "PING is sent on request (pingWebhook), not subscribed to",
        ));
    }
    let mut names: Vec<String> = events
        .iter()
        .map(|k| super::events::type_name(*k))
        .collect();
    names.sort();
    names.dedup();
    Ok(json!(names))
}

/// Whether a webhook wants events of this type.
fn wants(hook: &webhook::Model, kind: EventKind) -> bool {
    let name = super::events::type_name(kind);
    match hook.events.as_array() {
        Some(list) if !list.is_empty() => list.iter().any(|v| v.as_str() == Some(name.as_str())),
        _ => true,
    }
}

fn description(raw: Option<&str>) -> AppResult<Option<String>> {
    let text = raw.map(str::trim).filter(|t| !t.is_empty());
    match text {
        Some(t) if t.chars().count() > MAX_DESCRIPTION => Err(AppError::bad_input(
            "input.description",
            format!("must be at most {MAX_DESCRIPTION} characters long"),
        )),
        _ => Ok(text.map(str::to_owned)),
    }
}

/// Checks that the viewer may manage the webhooks of `model` (`None`: the global ones).
async fn authorize_scope(
    state: &AppState,
    viewer: &Viewer,
    model: Option<Uuid>,
) -> AppResult<Uuid> {
    match model {
        Some(id) => Ok(super::models::find_for_edit(state, viewer, id)
            .await?
            .actor()),
        None => {
            let caller = viewer.require(Scope::Write)?;
            viewer.require_admin()?;
            Ok(caller.user.id)
        }
    }
}

/// The live webhooks of a model (`None`: the global ones).
fn live_in_scope(model: Option<Uuid>) -> sea_orm::Select<webhook::Entity> {
    let scope = match model {
        Some(id) => webhook::Column::ModelId.eq(id),
        None => webhook::Column::ModelId.is_null(),
    };
    webhook::Entity::find()
        .filter(scope)
        .filter(webhook::Column::RetiredAt.is_null())
}

/// The webhook with this id, if the viewer may manage it (`NOT_FOUND` otherwise, as for a
/// model it may not see).
pub async fn find_for_edit(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<webhook::Model> {
    let hook = webhook::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("webhook"))?;
    let allowed = match (hook.model_id, hook.retired_at) {
        // The model is gone: its webhook is its maker's and the administrators'.
        (Some(_), Some(_)) => access::may_manage_retired_webhook(viewer, hook.owner_id)?,
        (model, None) => authorize_scope(state, viewer, model).await.map(|_| true)?,
        (None, Some(_)) => false,
    };
    if !allowed {
        return Err(AppError::NotFound("webhook"));
    }
    Ok(hook)
}

/// Makes a webhook; returns it with its secret, which is never shown again.
pub async fn create(
    state: &AppState,
    viewer: &Viewer,
    input: NewWebhook,
) -> AppResult<(webhook::Model, String)> {
    let owner = authorize_scope(state, viewer, input.model_id).await?;
    let url = WebhookUrl::parse(
        "input.url",
        &input.url,
        state.config.webhooks.private_targets,
    )?;
    let events = events_json("input.events", &input.events)?;
    let description = description(input.description.as_deref())?;
    let txn = super::begin_write(state).await?;
    // Creations in one scope wait for each other, so two cannot both count it under its limit.
    let scope = input
        .model_id
        .map_or_else(|| "global".to_owned(), |id| id.to_string());
    super::serialize(&txn, SCOPE_LOCKS, &scope).await?;
    let existing = live_in_scope(input.model_id).count(&txn).await?;
    if existing >= MAX_PER_SCOPE {
        return Err(AppError::Conflict(format!(
            "at most {MAX_PER_SCOPE} webhooks per model (and {MAX_PER_SCOPE} global ones)"
        )));
    }
    let secret = new_secret();
    let now = super::now();
    let hook = webhook::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(owner),
        model_id: Set(input.model_id),
        url: Set(url.as_str().to_owned()),
        secret: Set(secret.clone()),
        events: Set(events),
        description: Set(description),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        retired_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    tracing::info!(webhook_id = %hook.id, model_id = ?hook.model_id, "webhook created");
    Ok((hook, secret))
}

/// Changes a webhook's receiver, events, description or whether it is on.
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    changes: WebhookChanges,
) -> AppResult<webhook::Model> {
    let hook = find_for_edit(state, viewer, id).await?;
    let mut row: webhook::ActiveModel = hook.into();
    if let Some(url) = &changes.url {
        let url = WebhookUrl::parse("input.url", url, state.config.webhooks.private_targets)?;
        row.url = Set(url.as_str().to_owned());
    }
    if let Some(events) = &changes.events {
        row.events = Set(events_json("input.events", events)?);
    }
    if let Some(text) = &changes.description {
        row.description = Set(description(Some(text))?);
    }
    if let Some(active) = changes.active {
        row.active = Set(active);
    }
    row.updated_at = Set(super::now());
    Ok(row.update(&state.db).await?)
}

/// Gives a webhook a new secret (the old one stops signing at once); returns it, once.
pub async fn rotate_secret(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<(webhook::Model, String)> {
    let hook = find_for_edit(state, viewer, id).await?;
    let secret = new_secret();
    let mut row: webhook::ActiveModel = hook.into();
    row.secret = Set(secret.clone());
    row.updated_at = Set(super::now());
    let hook = row.update(&state.db).await?;
    tracing::info!(webhook_id = %hook.id, "webhook secret rotated");
    Ok((hook, secret))
}

/// Deletes a webhook and its delivery log.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<()> {
    let hook = find_for_edit(state, viewer, id).await?;
    webhook::Entity::delete_by_id(hook.id)
        .exec(&state.db)
        .await?;
    tracing::info!(webhook_id = %hook.id, "webhook deleted");
    Ok(())
}

/// A model's live webhooks (`None`: the global ones), oldest first.
pub async fn list(
    state: &AppState,
    viewer: &Viewer,
    model: Option<Uuid>,
) -> AppResult<Vec<webhook::Model>> {
    authorize_scope(state, viewer, model).await?;
    Ok(live_in_scope(model).all(&state.db).await?)
}

/// Queues the events of model `model_id` for every webhook that wants them and whose maker
/// may still see them, in the events' transaction (one read of the hooks with their makers).
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    model_id: Uuid,
    events: &[event::Model],
) -> AppResult<()> {
    let hooks: Vec<(webhook::Model, Option<user::Model>)> = webhook::Entity::find()
        .find_also_related(user::Entity)
        .filter(webhook::Column::Active.eq(true))
        .filter(webhook::Column::RetiredAt.is_null())
        .filter(
            Condition::any()
                .add(webhook::Column::ModelId.eq(model_id))
                .add(webhook::Column::ModelId.is_null()),
        )
        .all(db)
        .await?;
    let rows: Vec<_> = events
        .iter()
        .flat_map(|event| {
            hooks.iter().filter_map(move |(hook, maker)| {
                let receives = wants(hook, event.kind)
                    && maker
                        .as_ref()
                        .is_some_and(|maker| access::webhook_may_receive(maker, event.owner_id));
                receives.then(|| delivery_row(hook.id, event.seq))
            })
        })
        .collect();
    if !rows.is_empty() {
        webhook_delivery::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// A delivery of event `seq` to webhook `hook`, due now.
fn delivery_row(hook: Uuid, seq: i64) -> webhook_delivery::ActiveModel {
    let now = super::now();
    webhook_delivery::ActiveModel {
        id: Set(Uuid::now_v7()),
        webhook_id: Set(hook),
        event_seq: Set(seq),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        last_status_code: Set(None),
        last_latency_ms: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
    }
}

/// Retires a deleted model's webhooks, in the deletion's transaction, after its deletion
/// event was queued for them: they send what is queued and receive nothing more.
pub async fn retire_of_model<C: ConnectionTrait>(db: &C, model_id: Uuid) -> AppResult<()> {
    webhook::Entity::update_many()
        .col_expr(webhook::Column::RetiredAt, Expr::value(Some(super::now())))
        .filter(webhook::Column::ModelId.eq(model_id))
        .filter(webhook::Column::RetiredAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Queues a test event (`ping`) for a webhook, whether it is on or not; returns its delivery.
pub async fn ping(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<webhook_delivery::Model> {
    let hook = find_for_edit(state, viewer, id).await?;
    let actor = viewer.user_id();
    let event_id = Uuid::now_v7();
    let at = super::now();
    let txn = state.db.begin().await?;
    let event = event::ActiveModel {
        seq: NotSet,
        id: Set(event_id),
        kind: Set(EventKind::Ping),
        model_id: Set(None),
        version_id: Set(None),
        owner_id: Set(None),
        actor_id: Set(actor),
        payload: Set(json!({
            "id": event_id,
            "type": super::events::type_name(EventKind::Ping),
            "occurredAt": at,
            "actorId": actor,
            "webhook": { "id": hook.id, "modelId": hook.model_id },
            "data": { "zen": "A version is a set of files." },
        })),
        created_at: Set(at),
    }
    .insert(&txn)
    .await?;
    let delivery = delivery_row(hook.id, event.seq).insert(&txn).await?;
    // A change: the delivery log's totals show it, and the sender wakes for it.
    super::commit_change(state, txn).await?;
    Ok(delivery)
}

/// Queues one of a webhook's deliveries again, as a new delivery of the same event (the old
/// one stays in the log).
pub async fn redeliver(
    state: &AppState,
    viewer: &Viewer,
    delivery_id: Uuid,
) -> AppResult<webhook_delivery::Model> {
    let delivery = webhook_delivery::Entity::find_by_id(delivery_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("webhook delivery"))?;
    let hook = find_for_edit(state, viewer, delivery.webhook_id)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("webhook delivery"),
            other => other,
        })?;
    let again = delivery_row(hook.id, delivery.event_seq)
        .insert(&state.db)
        .await?;
    // A change: the delivery log's totals show it, and the sender wakes for it.
    state.changes.bump();
    tracing::info!(webhook_id = %hook.id, delivery_id = %again.id, of = %delivery.id, "webhook delivery queued again");
    Ok(again)
}

/// A page of a webhook's deliveries, newest first.
pub async fn deliveries(
    state: &AppState,
    hook: &webhook::Model,
    status: Option<DeliveryStatus>,
    size: usize,
    after: Option<Cursor>,
) -> AppResult<Page<webhook_delivery::Model>> {
    let mut base =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::WebhookId.eq(hook.id));
    if let Some(status) = status {
        base = base.filter(webhook_delivery::Column::Status.eq(status));
    }
    newest_first(
        state,
        base,
        webhook_delivery::Column::Id,
        size,
        after,
        |row| row.id,
    )
    .await
}

/// The events of these deliveries, by sequence number.
pub async fn events_of<C: ConnectionTrait>(
    db: &C,
    seqs: impl IntoIterator<Item = i64>,
) -> AppResult<Vec<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::Seq.is_in(seqs))
        .all(db)
        .await?)
}

/// The tries of these deliveries, oldest first.
pub async fn attempts_of<C: ConnectionTrait>(
    db: &C,
    deliveries: impl IntoIterator<Item = Uuid>,
) -> AppResult<Vec<webhook_attempt::Model>> {
    use sea_orm::QueryOrder;
    Ok(webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(deliveries))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(db)
        .await?)
}
