//! Replicas that agree at once. With `MODELHUB_REDIS_URL`, every change committed through this
//! replica is announced on the Redis channel `{prefix}:changes` (as `<replica> catalog`, or
//! `<replica> accounts` when accounts or credentials changed), and a change announced by
//! another replica makes this one's cached answers stale, and its cached credentials when
//! accounts changed (it moves the [`ChangeCounter`](crate::state::ChangeCounter) they are
//! tagged with), so a disabled account or a new version shows on every replica within a
//! Redis round trip.
//!
//! When Redis cannot be reached, announcements are dropped and the caches' time to live
//! (`MODELHUB_RESPONSE_CACHE_SECS`, 2 s) bounds how long another replica's change may go
//! unseen; once the subscription is back, everything cached is made stale, since changes may
//! have been missed meanwhile.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;

use crate::state::AppState;

/// The kinds of change an announcement names.
const CATALOG: &str = "catalog";
const ACCOUNTS: &str = "accounts";

/// How long to wait before connecting to Redis again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The channel the replicas of one hub (sharing `prefix`) announce changes on.
fn channel(prefix: &str) -> String {
    format!("{prefix}:changes")
}

/// What a replica announces: its name, and whether accounts or credentials changed.
fn announcement(replica: &str, accounts: bool) -> String {
    let kind = if accounts { ACCOUNTS } else { CATALOG };
    format!("{replica} {kind}")
}

/// Whether an announcement heard comes from another replica (`Some`), and if so whether it
/// says accounts or credentials changed; one it cannot read is taken to say they did.
fn heard(payload: &str, replica: &str) -> Option<bool> {
    let (from, kind) = payload.split_once(' ').unwrap_or((payload, ""));
    (from != replica).then_some(kind != CATALOG)
}

/// Announces this replica's changes and hears the others' until the task is dropped (at once
/// when no Redis is configured).
pub async fn run(state: AppState) {
    let Some(url) = &state.config.redis_url else {
        return;
    };
    let client = match redis::Client::open(url.expose_secret()) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "MODELHUB_REDIS_URL cannot be used for change announcements");
            return;
        }
    };
    let channel = channel(&state.config.redis_prefix);
    tokio::join!(
        announce(&state, client.clone(), &channel),
        listen(&state, &client, &channel)
    );
}

/// Publishes one announcement per burst of local changes (several changes that come while one
/// is being published go out as one).
async fn announce(state: &AppState, client: redis::Client, channel: &str) {
    let mut connection: Option<ConnectionManager> = None;
    loop {
        state.changes.local_change().await;
        if connection.is_none() {
            connection = ConnectionManager::new(client.clone())
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "cannot announce changes on Redis"))
                .ok();
        }
        let Some(redis) = connection.as_mut() else {
            continue;
        };
        let accounts = state.changes.take_accounts_changed();
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(announcement(&state.replica, accounts))
            .query_async(redis)
            .await;
        if let Err(e) = published {
            tracing::warn!(error = %e, "a change was not announced on Redis");
            if accounts {
                // Said with the next announcement, so no replica keeps a stale credential.
                state.changes.keep_accounts_unannounced();
            }
        }
    }
}

/// Subscribes to the channel, reconnecting when the subscription drops, and makes the caches
/// stale on every other replica's announcement.
async fn listen(state: &AppState, client: &redis::Client, channel: &str) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(channel).await {
                Ok(()) => {
                    // Changes announced while not subscribed were missed.
                    state.changes.remote_change(true);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let payload: String = message.get_payload().unwrap_or_default();
                        if let Some(accounts) = heard(&payload, &state.replica) {
                            state.changes.remote_change(accounts);
                        }
                    }
                    tracing::warn!("the Redis subscription to changes ended; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to changes on Redis"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot reach Redis for changes"),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{announcement, heard};

    #[test]
    fn an_announcement_says_who_changed_what() {
        assert_eq!(heard(&announcement("a", false), "b"), Some(false));
        assert_eq!(heard(&announcement("a", true), "b"), Some(true));
        assert_eq!(heard(&announcement("a", true), "a"), None);
        // A bare name (or anything unread) may have been a change to accounts.
        assert_eq!(heard("a", "b"), Some(true));
    }
}
