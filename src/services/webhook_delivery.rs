//! Sends the queued webhook deliveries, off the request path, on every replica. A replica
//! takes a due delivery by setting its lease in a conditional update, so of several replicas
//! one sends it; one that dies mid-delivery leaves the lease to lapse and another sends it
//! again. A delivery that fails is retried with a growing wait until its event is a day old
//! (`MODELHUB_WEBHOOK_RETRY_WINDOW_SECS`), then fails; every try is logged.
//!
//! Each request is a `POST` of the event's JSON with these headers:
//! - `X-ModelHub-Event`: the event type (`version.created`, …, `ping`);
//! - `X-ModelHub-Delivery`: the delivery's id (the same on every retry of it);
//! - `X-ModelHub-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256>`, the HMAC keyed with
//!   the webhook's secret over `<t>.<body>`. A receiver recomputes it, compares in constant
//!   time, and refuses a `t` too far from its clock.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use futures_util::StreamExt;
use hmac::{KeyInit, Mac};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    config::WebhookOptions,
    domain::webhook_url::is_internal,
    entities::{
        enums::{DeliveryStatus, EventKind},
        event, webhook, webhook_attempt, webhook_delivery,
    },
    error::{AppError, AppResult},
    state::AppState,
};

/// Most deliveries taken at once.
const BATCH: u64 = 32;
/// How many are sent at the same time.
const CONCURRENCY: usize = 8;
/// How long a taken delivery is this replica's (well beyond the longest try).
const LEASE: Duration = Duration::from_secs(120);
/// The longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// The longest error kept in the log.
const MAX_ERROR: usize = 500;

/// Sends due deliveries until dropped: woken by every change (a queued delivery is one) and
/// at least every second for retries.
pub async fn run(state: AppState) {
    let client = match client(&state.config.webhooks) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the webhook client; webhooks are not sent");
            return;
        }
    };
    let poll = state.config.webhooks.retry_base.min(Duration::from_secs(1));
    let mut changes = state.changes.watch();
    loop {
        match send_due(&state, &client).await {
            Ok(taken) if taken as u64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e.cause().unwrap_or_else(|| e.message()), "cannot send webhook deliveries")
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// The HTTP client deliveries go out with: no redirects followed, the configured timeout, and
/// unless internal receivers are allowed, names resolved to public addresses only.
fn client(options: &WebhookOptions) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ModelHub-Webhooks/", env!("CARGO_PKG_VERSION")));
    if options.private_targets {
        builder.build()
    } else {
        builder.dns_resolver(Arc::new(PublicOnly)).build()
    }
}

/// Resolves names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| !is_internal(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Takes the due deliveries no replica holds, and sends them; returns how many it took.
async fn send_due(state: &AppState, client: &reqwest::Client) -> AppResult<usize> {
    let now = super::now();
    let due: Vec<Uuid> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .filter(free(now))
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .limit(BATCH)
        .into_tuple()
        .all(&state.db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let until = now + chrono::Duration::from_std(LEASE).map_err(AppError::internal)?;
    // Of several replicas taking the same ones, each gets those still free when it updates.
    let taken = webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::LeaseUntil,
            Expr::value(Some(until)),
        )
        .filter(webhook_delivery::Column::Id.is_in(due))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .filter(free(now))
        .exec_with_returning(&state.db)
        .await?;
    let count = taken.len();
    if count == 0 {
        return Ok(0);
    }
    // Read once for the batch: a secret rotated or a webhook switched off while the batch is
    // sent applies from the next one (a receiver refusing the old signature gets a retry).
    let hooks: HashMap<Uuid, webhook::Model> = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(taken.iter().map(|d| d.webhook_id)))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|hook| (hook.id, hook))
        .collect();
    let events: HashMap<i64, event::Model> =
        super::webhooks::events_of(&state.db, taken.iter().map(|d| d.event_seq))
            .await?
            .into_iter()
            .map(|event| (event.seq, event))
            .collect();
    futures_util::stream::iter(taken)
        .for_each_concurrent(CONCURRENCY, |delivery| {
            // Both are deleted with their deliveries.
            let found = hooks.get(&delivery.webhook_id).zip(events.get(&delivery.event_seq));
            async move {
                let Some((hook, event)) = found else {
                    return;
                };
                if let Err(e) = send_one(state, client, &delivery, hook, event).await {
                    tracing::warn!(delivery_id = %delivery.id, error = %e.cause().unwrap_or_else(|| e.message()), "a webhook delivery could not be recorded; it is sent again once its lease lapses");
                }
            }
        })
        .await;
    Ok(count)
}

/// A delivery no replica holds.
fn free(now: chrono::DateTime<chrono::Utc>) -> Condition {
    Condition::any()
        .add(webhook_delivery::Column::LeaseUntil.is_null())
        .add(webhook_delivery::Column::LeaseUntil.lt(now))
}

/// The signature header of `body` sent at `timestamp` (unix seconds), keyed with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("t={timestamp},v1={}", crate::auth::api_token::hex(&digest))
}

/// How one try went.
struct Outcome {
    status: Option<u16>,
    latency_ms: i32,
    error: Option<String>,
}

/// Sends one taken delivery and records how it went.
async fn send_one(
    state: &AppState,
    client: &reqwest::Client,
    delivery: &webhook_delivery::Model,
    hook: &webhook::Model,
    event: &event::Model,
) -> AppResult<()> {
    // A ping is how an owner tests a receiver, switched on or not.
    if !hook.active && event.kind != EventKind::Ping {
        return give_up(state, delivery, "the webhook is switched off").await;
    }
    let outcome = post(client, hook, delivery, event).await;
    record(state, delivery, event, outcome).await
}

/// Posts the event to the receiver.
async fn post(
    client: &reqwest::Client,
    hook: &webhook::Model,
    delivery: &webhook_delivery::Model,
    event: &event::Model,
) -> Outcome {
    let body = match serde_json::to_vec(&event.payload) {
        Ok(body) => body,
        Err(e) => {
            return Outcome {
                status: None,
                latency_ms: 0,
                error: Some(format!("the event cannot be written as JSON: {e}")),
            };
        }
    };
    let timestamp = chrono::Utc::now().timestamp();
    let started = std::time::Instant::now();
    let sent = client
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-ModelHub-Event", super::events::type_name(event.kind))
        .header("X-ModelHub-Delivery", delivery.id.to_string())
        .header(
            "X-ModelHub-Signature",
            signature(&hook.secret, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    match sent {
        Ok(answer) => {
            let status = answer.status();
            Outcome {
                status: Some(status.as_u16()),
                latency_ms,
                error: (!status.is_success()).then(|| format!("the receiver answered {status}")),
            }
        }
        Err(e) => Outcome {
            status: None,
            latency_ms,
            error: Some(describe(&e)),
        },
    }
}

/// A failed request in a line: what went wrong, with its causes.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "the receiver did not answer in time".to_owned()
    } else if error.is_connect() {
        "cannot connect to the receiver".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text.chars().take(MAX_ERROR).collect()
}

/// How long to wait after try number `tries` failed: `base`, then three times longer each
/// time, up to an hour.
pub fn backoff(base: Duration, tries: i32) -> Duration {
    let exponent = u32::try_from(tries.saturating_sub(1)).unwrap_or(0).min(20);
    base.saturating_mul(3u32.saturating_pow(exponent))
        .min(MAX_WAIT)
}

/// Logs a try and moves the delivery on: delivered, due again later, or failed.
async fn record(
    state: &AppState,
    delivery: &webhook_delivery::Model,
    event: &event::Model,
    outcome: Outcome,
) -> AppResult<()> {
    let now = super::now();
    let tries = delivery.attempts + 1;
    let wait = chrono::Duration::from_std(backoff(state.config.webhooks.retry_base, tries))
        .map_err(AppError::internal)?;
    let window = chrono::Duration::from_std(state.config.webhooks.retry_window)
        .map_err(AppError::internal)?;
    let (status, next) = match (&outcome.error, now + wait) {
        (None, _) => (DeliveryStatus::Delivered, now),
        (Some(_), next) if next <= event.created_at + window => (DeliveryStatus::Pending, next),
        (Some(_), _) => (DeliveryStatus::Failed, now),
    };
    let code = outcome.status.map(i32::from);
    let txn = state.db.begin().await?;
    webhook_attempt::ActiveModel {
        id: Set(Uuid::now_v7()),
        delivery_id: Set(delivery.id),
        attempted_at: Set(now),
        status_code: Set(code),
        latency_ms: Set(outcome.latency_ms),
        error: Set(outcome.error.clone()),
    }
    .insert(&txn)
    .await?;
    let moved = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(status))
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(tries))
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
        .col_expr(
            webhook_delivery::Column::LeaseUntil,
            Expr::value(None::<chrono::DateTime<chrono::Utc>>),
        )
        .col_expr(webhook_delivery::Column::LastStatusCode, Expr::value(code))
        .col_expr(
            webhook_delivery::Column::LastLatencyMs,
            Expr::value(Some(outcome.latency_ms)),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(outcome.error),
        )
        .col_expr(
            webhook_delivery::Column::FinishedAt,
            Expr::value((status != DeliveryStatus::Pending).then_some(now)),
        )
        .filter(held_by_us(delivery))
        .exec(&txn)
        .await?;
    if moved.rows_affected == 0 {
        // Taken by another replica meanwhile: its try is the one kept.
        txn.rollback().await?;
        return Ok(());
    }
    txn.commit().await?;
    tracing::info!(delivery_id = %delivery.id, webhook_id = %delivery.webhook_id, tries, status = ?status, code = ?code, latency_ms = outcome.latency_ms, "webhook delivery tried");
    Ok(())
}

/// Ends a delivery that cannot be sent, without a try.
async fn give_up(state: &AppState, delivery: &webhook_delivery::Model, why: &str) -> AppResult<()> {
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Status,
            Expr::value(DeliveryStatus::Failed),
        )
        .col_expr(
            webhook_delivery::Column::LeaseUntil,
            Expr::value(None::<chrono::DateTime<chrono::Utc>>),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(Some(why.to_owned())),
        )
        .col_expr(
            webhook_delivery::Column::FinishedAt,
            Expr::value(Some(super::now())),
        )
        .filter(held_by_us(delivery))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// The delivery, while the lease this replica took on it holds (one that outlived it may
/// have been taken by another replica, whose outcome then stands).
fn held_by_us(delivery: &webhook_delivery::Model) -> sea_orm::Condition {
    let lease = match delivery.lease_until {
        Some(until) => webhook_delivery::Column::LeaseUntil.eq(until),
        None => webhook_delivery::Column::LeaseUntil.is_null(),
    };
    sea_orm::Condition::all()
        .add(webhook_delivery::Column::Id.eq(delivery.id))
        .add(lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_three_times_longer_each_time_up_to_an_hour() {
        let base = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=8).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits, [10, 30, 90, 270, 810, 2430, 3600, 3600]);
        assert_eq!(backoff(base, i32::MAX), MAX_WAIT);
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // As Python's `hmac.new(b"whsec_test", b'1700000000.{"a":1}', hashlib.sha256)` has it.
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }
}
