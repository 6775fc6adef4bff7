//! Webhooks in GraphQL: the `Webhook`, `WebhookDelivery` and `ChangeEvent` types, the
//! queries that list them and the mutations that manage them (see
//! [`crate::services::webhooks`]).

use std::collections::HashMap;

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    RequestContext,
    models::{ConnectionOf, connection},
    scalars::parse_id,
};
use crate::{
    entities::{
        enums::{DeliveryStatus, EventKind},
        event, webhook, webhook_attempt, webhook_delivery,
    },
    error::{AppError, AppResult},
    services::{
        pagination::{Cursor, page_size},
        webhooks::{self, NewWebhook, WebhookChanges},
    },
    state::AppState,
};

/// A receiver URL subscribed to change events: a model's, or (administrators') every
/// model's.
pub struct Webhook(webhook::Model);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The model whose events it receives; null: every model's.
    async fn model_id(&self) -> Option<ID> {
        self.0.model_id.map(|id| ID(id.to_string()))
    }

    /// Where deliveries are posted.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// The event types it receives; empty: all of them.
    async fn events(&self) -> Vec<EventKind> {
        use sea_orm::ActiveEnum;
        self.0
            .events
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .filter_map(|name| EventKind::try_from_value(&name.to_owned()).ok())
            .collect()
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Whether deliveries are sent (a switched-off webhook's queued ones fail).
    async fn active(&self) -> bool {
        self.0.active
    }

    /// Whether its model was deleted: it receives nothing more.
    async fn retired(&self) -> bool {
        self.0.retired_at.is_some()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Its deliveries, newest first, with each one's log of tries.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<DeliveryStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<WebhookDelivery>> {
        let after = after.map(|raw| Cursor::decode("after", &raw)).transpose()?;
        let state = ctx.state();
        let page = webhooks::deliveries(state, &self.0, status, page_size(first)?, after).await?;
        let rows: Vec<&webhook_delivery::Model> = page.items.iter().map(|(_, d)| d).collect();
        let details = Details::load(state, &rows).await?;
        Ok(connection(page, |row| details.delivery(row)))
    }
}

/// The events and tries of a page of deliveries, read in one statement each.
struct Details {
    events: HashMap<i64, event::Model>,
    attempts: HashMap<Uuid, Vec<webhook_attempt::Model>>,
}

impl Details {
    async fn load(state: &AppState, rows: &[&webhook_delivery::Model]) -> AppResult<Self> {
        let events = webhooks::events_of(&state.db, rows.iter().map(|d| d.event_seq))
            .await?
            .into_iter()
            .map(|e| (e.seq, e))
            .collect();
        let mut attempts: HashMap<Uuid, Vec<webhook_attempt::Model>> = HashMap::new();
        for attempt in webhooks::attempts_of(&state.db, rows.iter().map(|d| d.id)).await? {
            attempts
                .entry(attempt.delivery_id)
                .or_default()
                .push(attempt);
        }
        Ok(Self { events, attempts })
    }

    fn delivery(&self, row: webhook_delivery::Model) -> WebhookDelivery {
        WebhookDelivery {
            event: self.events.get(&row.event_seq).cloned(),
            log: self.attempts.get(&row.id).cloned().unwrap_or_default(),
            row,
        }
    }

    /// One delivery with its details.
    async fn of(state: &AppState, row: webhook_delivery::Model) -> AppResult<WebhookDelivery> {
        Ok(Self::load(state, &[&row]).await?.delivery(row))
    }
}

/// One event to send to one webhook, and how that went.
pub struct WebhookDelivery {
    row: webhook_delivery::Model,
    event: Option<event::Model>,
    log: Vec<webhook_attempt::Model>,
}

#[Object]
impl WebhookDelivery {
    /// The same on every try (the `X-ModelHub-Delivery` header).
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn status(&self) -> DeliveryStatus {
        self.row.status
    }

    /// What is delivered.
    async fn event(&self) -> Option<ChangeEvent> {
        self.event.clone().map(ChangeEvent)
    }

    /// How many tries were made.
    async fn attempts(&self) -> i32 {
        self.row.attempts
    }

    /// When the next try is due (while pending).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.row.status == DeliveryStatus::Pending).then_some(self.row.next_attempt_at)
    }

    /// The receiver's status code at the last try (null: no answer came).
    async fn last_status_code(&self) -> Option<i32> {
        self.row.last_status_code
    }

    /// How long the last try took, in milliseconds.
    async fn last_latency_ms(&self) -> Option<i32> {
        self.row.last_latency_ms
    }

    /// Why the last try failed.
    async fn last_error(&self) -> Option<&str> {
        self.row.last_error.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When it was delivered or given up.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.finished_at
    }

    /// Every try, oldest first.
    async fn log(&self) -> Vec<WebhookAttempt> {
        self.log
            .iter()
            .map(|a| WebhookAttempt {
                attempted_at: a.attempted_at,
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                error: a.error.clone(),
            })
            .collect()
    }
}

/// One try of a delivery.
#[derive(SimpleObject)]
pub struct WebhookAttempt {
    attempted_at: DateTime<Utc>,
    /// The receiver's status code (null: no answer came).
    status_code: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
}

/// Something that happened to a model, as webhooks receive it.
pub struct ChangeEvent(pub event::Model);

#[Object]
impl ChangeEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    #[graphql(name = "type")]
    async fn kind(&self) -> EventKind {
        self.0.kind
    }

    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The JSON body a webhook receives.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
}

/// A webhook just made, or given a new secret, with that secret: it is shown this once.
#[derive(SimpleObject)]
pub struct WebhookWithSecret {
    webhook: Webhook,
    /// Keys the `X-ModelHub-Signature` of every delivery.
    secret: String,
}

/// A webhook to make.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// The model whose events it receives; omitted: every model's (administrators).
    model_id: Option<ID>,
    url: String,
    /// The event types it receives; omitted or empty: all of them.
    events: Option<Vec<EventKind>>,
    description: Option<String>,
}

/// Changes to a webhook; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    url: Option<String>,
    events: Option<Vec<EventKind>>,
    description: Option<String>,
    active: Option<bool>,
}

/// Webhook queries.
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// A model's webhooks (its owner and administrators), or with no model the global ones
    /// (administrators).
    async fn webhooks(&self, ctx: &Context<'_>, model_id: Option<ID>) -> Result<Vec<Webhook>> {
        let model = model_id
            .as_ref()
            .map(|id| parse_id("modelId", id))
            .transpose()?;
        let hooks = webhooks::list(ctx.state(), ctx.viewer(), model).await?;
        Ok(hooks.into_iter().map(Webhook).collect())
    }

    /// A webhook the caller manages.
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Webhook>> {
        let id = parse_id("id", &id)?;
        match webhooks::find_for_edit(ctx.state(), ctx.viewer(), id).await {
            Ok(hook) => Ok(Some(Webhook(hook))),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Webhook mutations.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Subscribes a receiver URL to a model's events (its owner or an administrator), or to
    /// every model's (administrators). The secret is in the answer and never again.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> Result<WebhookWithSecret> {
        let model_id = input
            .model_id
            .as_ref()
            .map(|id| parse_id("input.modelId", id))
            .transpose()?;
        let (hook, secret) = webhooks::create(
            ctx.state(),
            ctx.viewer(),
            NewWebhook {
                model_id,
                url: input.url,
                events: input.events.unwrap_or_default(),
                description: input.description,
            },
        )
        .await?;
        Ok(WebhookWithSecret {
            webhook: Webhook(hook),
            secret,
        })
    }

    /// Changes a webhook's URL, events, description, or switches it on or off.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookInput,
    ) -> Result<Webhook> {
        let id = parse_id("id", &id)?;
        let changes = WebhookChanges {
            url: input.url,
            events: input.events,
            description: input.description,
            active: input.active,
        };
        Ok(Webhook(
            webhooks::update(ctx.state(), ctx.viewer(), id, changes).await?,
        ))
    }

    /// Gives a webhook a new secret; the old one stops signing at once.
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookWithSecret> {
        let id = parse_id("id", &id)?;
        let (hook, secret) = webhooks::rotate_secret(ctx.state(), ctx.viewer(), id).await?;
        Ok(WebhookWithSecret {
            webhook: Webhook(hook),
            secret,
        })
    }

    /// Deletes a webhook and its delivery log.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let id = parse_id("id", &id)?;
        webhooks::delete(ctx.state(), ctx.viewer(), id).await?;
        Ok(true)
    }

    /// Sends the webhook a test event (`PING`); returns its delivery, queued.
    async fn ping_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let id = parse_id("id", &id)?;
        let state = ctx.state();
        let delivery = webhooks::ping(state, ctx.viewer(), id).await?;
        Ok(Details::of(state, delivery).await?)
    }

    /// Sends a delivery's event again, as a new delivery.
    async fn redeliver_webhook_delivery(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<WebhookDelivery> {
        let id = parse_id("id", &id)?;
        let state = ctx.state();
        let delivery = webhooks::redeliver(state, ctx.viewer(), id).await?;
        Ok(Details::of(state, delivery).await?)
    }
}
