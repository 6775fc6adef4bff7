//! Webhooks: deliveries of change events to a real receiver on a loopback port, which checks
//! every signature; retries with backoff, the delivery log, redelivery, pings, secret
//! rotation, who may subscribe to what, giving up after the retry window, and one delivery
//! per event across replicas.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, safetensors, spawn_app, spawn_with};

const CREATE: &str = "mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { secret webhook { id url events active modelId } } }";
const DELIVERIES: &str = "query($id: ID!) { webhook(id: $id) { retired deliveries(first: 50) { totalCount edges { node { id status attempts lastStatusCode lastLatencyMs lastError nextAttemptAt finishedAt event { id type payload } log { statusCode latencyMs error attemptedAt } } } } } }";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    event: String,
    delivery: String,
    signature: String,
    body: Vec<u8>,
    /// What the receiver answered.
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether the signature is `secret`'s HMAC-SHA256 over `<t>.<body>`.
    fn signed_with(&self, secret: &str) -> bool {
        let (t, v1) = self
            .signature
            .split_once(',')
            .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
            .expect("t=…,v1=…");
        let sent = t.parse::<i64>().unwrap();
        assert!(
            (chrono::Utc::now().timestamp() - sent).abs() < 300,
            "a fresh timestamp"
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&self.body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        expected == v1
    }
}

/// A webhook receiver: answers `failing` with 500 to its first `fail_first` requests, then
/// 200, and keeps every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn receiver(fail_first: usize, failing: StatusCode) -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let kept = got.clone();
    let router = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                let mut got = kept.lock().unwrap();
                let status = if got.len() < fail_first {
                    failing
                } else {
                    StatusCode::OK
                };
                let header = |name: &str| {
                    headers
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                };
                got.push(Received {
                    event: header("x-modelhub-event"),
                    delivery: header("x-modelhub-delivery"),
                    signature: header("x-modelhub-signature"),
                    body: body.to_vec(),
                    answered: status.as_u16(),
                });
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Receiver {
        url: format!("http://{addr}/hook"),
        got,
    }
}

impl Receiver {
    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests of event type `event` came; returns them.
    async fn wait_for(&self, event: &str, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            let of: Vec<Received> = self
                .all()
                .into_iter()
                .filter(|r| r.event == event)
                .collect();
            if of.len() >= n {
                return of;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "timed out waiting for {n} `{event}` deliveries; got {:?}",
            self.all()
                .iter()
                .map(|r| r.event.clone())
                .collect::<Vec<_>>()
        );
    }
}

async fn model(app: &TestApp, token: &str, name: &str) -> (String, String) {
    let created = app
        .create_model(
            token,
            json!({ "name": name, "framework": "PYTORCH", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(4),
        )
        .await;
    let data = created.data();
    (
        data["createModel"]["id"].as_str().unwrap().to_owned(),
        data["createModel"]["currentVersion"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// Makes a webhook; returns its id and secret.
async fn webhook(app: &TestApp, token: &str, input: Value) -> (String, String) {
    let made = app.gql(Some(token), CREATE, json!({ "i": input })).await;
    let made = &made.data()["createWebhook"];
    (
        made["webhook"]["id"].as_str().unwrap().to_owned(),
        made["secret"].as_str().unwrap().to_owned(),
    )
}

async fn deliveries(app: &TestApp, token: &str, hook: &str) -> Value {
    app.gql(Some(token), DELIVERIES, json!({ "id": hook }))
        .await
        .data()["webhook"]
        .clone()
}

/// The webhook's deliveries once none is pending (bounded wait).
async fn settled(app: &TestApp, token: &str, hook: &str) -> Value {
    for _ in 0..1000 {
        let log = deliveries(app, token, hook).await;
        let edges = log["deliveries"]["edges"].as_array().unwrap();
        if edges.iter().all(|e| e["node"]["status"] != "PENDING") {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deliveries of {hook} still pending");
}

#[tokio::test]
async fn deliveries_are_signed_retried_logged_and_redeliverable() {
    let app = spawn_app().await;
    let owner = app.register("hook-owner").await;
    let (model_id, _) = model(&app, &owner, "hooked").await;
    // The first try of the first delivery fails.
    let rx = receiver(1, StatusCode::INTERNAL_SERVER_ERROR).await;
    let (hook, secret) = webhook(
        &app,
        &owner,
        json!({ "modelId": model_id, "url": rx.url, "description": "CI" }),
    )
    .await;
    assert!(secret.starts_with("whsec_") && secret.len() > 40);

    let v2 = app
        .create_version(
            &owner,
            &model_id,
            json!({ "version": "1.1.0" }),
            "w.safetensors",
            safetensors(5),
        )
        .await;
    let v2 = v2.data()["createModelVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two events (created, inspected), one of which failed its first try and was retried.
    rx.wait_for("version.created", 1).await;
    rx.wait_for("version.inspected", 1).await;
    let failed = rx.all()[0].clone();
    assert_eq!(failed.answered, 500);
    let retried = rx.wait_for(&failed.event, 2).await;
    assert_eq!(retried[1].answered, 200);
    assert_eq!(
        retried[1].delivery, failed.delivery,
        "a retry is the same delivery"
    );
    assert_eq!(retried[1].body, failed.body);
    for got in rx.all() {
        assert!(got.signed_with(&secret), "{got:?}");
        assert!(!got.signed_with("whsec_other"));
        assert_eq!(got.json()["type"], got.event.as_str());
        assert_eq!(got.json()["model"]["id"], model_id.as_str());
        assert_eq!(got.json()["model"]["owner"], "hook-owner");
        assert_eq!(got.json()["version"]["id"], v2.as_str());
    }
    let inspected = rx.wait_for("version.inspected", 1).await;
    assert_eq!(inspected[0].json()["data"]["status"], "SAFE");

    // The log: two tries of that delivery, the second one delivered (written once the
    // receiver's answer is back, which may be after the receiver noted the request).
    let log = settled(&app, &owner, &hook).await;
    assert_eq!(log["deliveries"]["totalCount"], 2);
    let edges = log["deliveries"]["edges"].as_array().unwrap().clone();
    let logged = edges
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["id"] == failed.delivery.as_str())
        .unwrap()
        .clone();
    assert_eq!(logged["status"], "DELIVERED");
    assert_eq!(logged["attempts"], 2);
    assert_eq!(logged["lastStatusCode"], 200);
    assert!(logged["lastLatencyMs"].as_i64().unwrap() >= 0);
    assert!(logged["nextAttemptAt"].is_null());
    assert!(!logged["finishedAt"].is_null());
    let tries: Vec<i64> = logged["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(tries, [500, 200]);
    assert_eq!(
        logged["event"]["type"].as_str().unwrap(),
        failed.event.replace('.', "_").to_uppercase()
    );
    assert_eq!(logged["event"]["payload"], failed.json());

    // Sent again by hand: a new delivery of the same event.
    let again = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { id status event { id } } }",
            json!({ "id": failed.delivery }),
        )
        .await;
    let again = again.data()["redeliverWebhookDelivery"].clone();
    assert_eq!(again["status"], "PENDING");
    let resent = rx.wait_for(&failed.event, 3).await;
    assert_eq!(resent[2].delivery, again["id"].as_str().unwrap());
    assert_eq!(resent[2].json()["id"], failed.json()["id"]);

    // A ping, then a new secret: the old one no longer signs.
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { pingWebhook(id: $id) { id } }",
        json!({ "id": hook }),
    )
    .await
    .data();
    let ping = rx.wait_for("ping", 1).await;
    assert!(ping[0].signed_with(&secret));
    let rotated = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": hook }),
        )
        .await;
    let new_secret = rotated.data()["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { pingWebhook(id: $id) { id } }",
        json!({ "id": hook }),
    )
    .await
    .data();
    let pings = rx.wait_for("ping", 2).await;
    assert!(pings[1].signed_with(&new_secret));
    assert!(!pings[1].signed_with(&secret));
    // A switched-off webhook is still pinged: that is how its owner tests the receiver.
    let toggle = async |active: bool| {
        app.gql(
            Some(&owner),
            "mutation($id: ID!, $on: Boolean!) { updateWebhook(id: $id, input: { active: $on }) { active } }",
            json!({ "id": hook, "on": active }),
        )
        .await
        .data();
    };
    toggle(false).await;
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { pingWebhook(id: $id) { id } }",
        json!({ "id": hook }),
    )
    .await
    .data();
    let pings = rx.wait_for("ping", 3).await;
    assert!(pings[2].signed_with(&new_secret));
    toggle(true).await;

    // Only the events asked for: alias moves, not versions.
    app.gql(
        Some(&owner),
        "mutation($id: ID!, $i: UpdateWebhookInput!) { updateWebhook(id: $id, input: $i) { events } }",
        json!({ "id": hook, "i": { "events": ["ALIAS_MOVED", "MODEL_DELETED"] } }),
    )
    .await
    .data();
    let versions_before = rx
        .all()
        .iter()
        .filter(|r| r.event.starts_with("version."))
        .count();
    app.create_version(
        &owner,
        &model_id,
        json!({ "version": "1.2.0" }),
        "w.safetensors",
        safetensors(6),
    )
    .await
    .data();
    app.gql(
        Some(&owner),
        "mutation($m: ID!, $v: ID!) { setAlias(modelId: $m, alias: \"champion\", versionId: $v) { name } }",
        json!({ "m": model_id, "v": v2 }),
    )
    .await
    .data();
    let moved = rx.wait_for("alias.moved", 1).await;
    assert_eq!(moved[0].json()["data"]["alias"], "champion");
    assert!(moved[0].signed_with(&new_secret));
    assert_eq!(
        rx.all()
            .iter()
            .filter(|r| r.event.starts_with("version."))
            .count(),
        versions_before,
        "1.2.0's events are not ones this webhook wants"
    );

    // The model goes: its webhook hears it, then is retired.
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { deleteModel(id: $id) }",
        json!({ "id": model_id }),
    )
    .await
    .data();
    let deleted = rx.wait_for("model.deleted", 1).await;
    assert_eq!(deleted[0].json()["model"]["name"], "hooked");
    assert_eq!(deliveries(&app, &owner, &hook).await["retired"], true);
}

#[tokio::test]
async fn who_may_subscribe_to_what() {
    let app = spawn_app().await;
    let owner = app.register("subscriber").await;
    let other = app.register("stranger").await;
    let admin = app.admin("hook-admin").await;
    let (model_id, _) = model(&app, &owner, "guarded").await;
    let rx = receiver(0, StatusCode::OK).await;

    // A stranger cannot see the private model, nor make a global webhook.
    let answer = app
        .gql(
            Some(&other),
            CREATE,
            json!({ "i": { "modelId": model_id, "url": rx.url } }),
        )
        .await;
    assert_eq!(answer.code(), "NOT_FOUND");
    let answer = app
        .gql(Some(&owner), CREATE, json!({ "i": { "url": rx.url } }))
        .await;
    assert_eq!(answer.code(), "FORBIDDEN");
    let answer = app
        .gql(
            None,
            CREATE,
            json!({ "i": { "modelId": model_id, "url": rx.url } }),
        )
        .await;
    assert_eq!(answer.code(), "UNAUTHENTICATED");
    for bad in [
        "ftp://example.com/x",
        "not a url",
        "https://u:p@example.com/",
    ] {
        let answer = app
            .gql(
                Some(&owner),
                CREATE,
                json!({ "i": { "modelId": model_id, "url": bad } }),
            )
            .await;
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{bad}");
    }
    let answer = app
        .gql(
            Some(&owner),
            CREATE,
            json!({ "i": { "modelId": model_id, "url": rx.url, "events": ["PING"] } }),
        )
        .await;
    assert_eq!(answer.code(), "BAD_USER_INPUT");

    // The owner's webhook is not the stranger's to read or change.
    let (hook, _) = webhook(&app, &owner, json!({ "modelId": model_id, "url": rx.url })).await;
    let read = app
        .gql(
            Some(&other),
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({ "id": hook }),
        )
        .await;
    assert!(read.data()["webhook"].is_null());
    let answer = app
        .gql(
            Some(&other),
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": hook }),
        )
        .await;
    assert_eq!(answer.code(), "NOT_FOUND");
    let listed = app
        .gql(
            Some(&owner),
            "query($m: ID) { webhooks(modelId: $m) { id url } }",
            json!({ "m": model_id }),
        )
        .await;
    assert_eq!(listed.data()["webhooks"][0]["id"], hook.as_str());

    // An administrator's global webhook hears every model; the owner's only its own.
    let (global, admin_secret) = webhook(
        &app,
        &admin,
        json!({ "url": rx.url, "events": ["PUBLICATION_REQUESTED", "PUBLICATION_APPROVED"] }),
    )
    .await;
    let (other_model, _) = model(&app, &other, "elsewhere").await;
    app.publish(&other, &admin, &other_model).await;
    app.publish(&owner, &admin, &model_id).await;
    let approved = rx.wait_for("publication.approved", 3).await;
    let to_admin: Vec<&Received> = approved
        .iter()
        .filter(|r| r.signed_with(&admin_secret))
        .collect();
    assert_eq!(to_admin.len(), 2, "the global webhook hears both models");
    let models: Vec<String> = to_admin
        .iter()
        .map(|r| r.json()["model"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(models.contains(&"elsewhere".to_owned()) && models.contains(&"guarded".to_owned()));
    let global_list = app
        .gql(Some(&admin), "{ webhooks { id } }", json!({}))
        .await;
    assert_eq!(global_list.data()["webhooks"][0]["id"], global.as_str());
    let listed = app
        .gql(Some(&owner), "{ webhooks { id } }", json!({}))
        .await;
    assert_eq!(listed.code(), "FORBIDDEN");

    // Switched off, it receives nothing; deleted, its log goes with it.
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { updateWebhook(id: $id, input: { active: false }) { active } }",
        json!({ "id": hook }),
    )
    .await
    .data();
    let before = app.count_rows("webhook_deliveries").await;
    app.create_version(
        &owner,
        &model_id,
        json!({ "version": "1.1.0" }),
        "w.safetensors",
        safetensors(9),
    )
    .await
    .data();
    assert_eq!(app.count_rows("webhook_deliveries").await, before);
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { deleteWebhook(id: $id) }",
        json!({ "id": hook }),
    )
    .await
    .data();
    let read = app
        .gql(
            Some(&owner),
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({ "id": hook }),
        )
        .await;
    assert!(read.data()["webhook"].is_null());
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_gives_up_when_its_window_closes() {
    let app = spawn_with(Options {
        webhook_retry_base: Duration::from_millis(20),
        webhook_retry_window: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let owner = app.register("unlucky").await;
    let (model_id, _) = model(&app, &owner, "flaky").await;
    let down = receiver(usize::MAX, StatusCode::SERVICE_UNAVAILABLE).await;
    let (hook, _) = webhook(
        &app,
        &owner,
        json!({ "modelId": model_id, "url": down.url, "events": ["ALIAS_MOVED"] }),
    )
    .await;
    // Nothing listens here.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    let (refused, _) = webhook(
        &app,
        &owner,
        json!({ "modelId": model_id, "url": gone, "events": ["ALIAS_MOVED"] }),
    )
    .await;
    let version = app
        .gql(
            Some(&owner),
            "query($id: ID!) { model(id: $id) { currentVersion { id } } }",
            json!({ "id": model_id }),
        )
        .await;
    let version = version.data()["model"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(
        Some(&owner),
        "mutation($m: ID!, $v: ID!) { setAlias(modelId: $m, alias: \"champion\", versionId: $v) { name } }",
        json!({ "m": model_id, "v": version }),
    )
    .await
    .data();
    for (id, code) in [(&hook, Some(503)), (&refused, None)] {
        let mut last = Value::Null;
        for _ in 0..1000 {
            last = deliveries(&app, &owner, id).await["deliveries"]["edges"][0]["node"].clone();
            if last["status"] == "FAILED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(last["status"], "FAILED", "{last}");
        let tries = last["attempts"].as_i64().unwrap();
        assert!(tries >= 3, "retried with backoff: {last}");
        assert_eq!(last["log"].as_array().unwrap().len() as i64, tries);
        assert_eq!(last["lastStatusCode"].as_i64(), code);
        if code.is_none() {
            assert!(
                last["lastError"]
                    .as_str()
                    .unwrap()
                    .contains("cannot connect"),
                "{last}"
            );
        }
        // The waits grew: each try came later after the one before than that one after its own.
        let at: Vec<chrono::DateTime<chrono::Utc>> = last["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["attemptedAt"].as_str().unwrap().parse().unwrap())
            .collect();
        let n = at.len();
        assert!(at[n - 1] - at[n - 2] > at[1] - at[0], "{at:?}");
    }
    assert!(down.all().iter().all(|r| r.answered == 503));
}

#[tokio::test]
async fn replicas_send_each_delivery_once() {
    let app = spawn_app().await;
    let replica = app.replica().await;
    let owner = app.register("busy").await;
    let (model_id, _) = model(&app, &owner, "popular").await;
    let rx = receiver(0, StatusCode::OK).await;
    webhook(
        &app,
        &owner,
        json!({ "modelId": model_id, "url": rx.url, "events": ["VERSION_CREATED"] }),
    )
    .await;
    for minor in 1..=10 {
        // Half the uploads go through each replica; both send deliveries.
        let through = if minor % 2 == 0 { &app } else { &replica };
        through
            .create_version(
                &owner,
                &model_id,
                json!({ "version": format!("1.{minor}.0") }),
                "w.safetensors",
                safetensors(10 + minor),
            )
            .await
            .data();
    }
    let got = rx.wait_for("version.created", 10).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.delivery.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10, "each delivery once");

    // A delivery a replica took and died with is sent once its lease lapses, not before.
    use modelhub::entities::{enums, event, webhook, webhook_attempt, webhook_delivery};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
    let hook = webhook::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let last = event::Entity::find()
        .filter(event::Column::Kind.eq(enums::EventKind::VersionCreated))
        .order_by_desc(event::Column::Seq)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now();
    let lease = now + chrono::Duration::milliseconds(300);
    let taken = webhook_delivery::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        webhook_id: Set(hook.id),
        event_seq: Set(last.seq),
        status: Set(enums::DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(Some(lease)),
        last_status_code: Set(None),
        last_latency_ms: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let got = rx.wait_for("version.created", 11).await;
    assert_eq!(got[10].delivery, taken.id.to_string());
    // The try is logged once the receiver's answer is back (bounded wait).
    let mut tries = Vec::new();
    for _ in 0..1000 {
        tries = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::DeliveryId.eq(taken.id))
            .all(&app.state.db)
            .await
            .unwrap();
        if !tries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tries.len(), 1);
    assert!(
        tries[0].attempted_at >= lease,
        "sent only once the lease lapsed"
    );
}

#[tokio::test]
async fn concurrent_creations_keep_a_model_under_its_webhook_limit() {
    let app = spawn_app().await;
    let owner = app.register("eager").await;
    let (model_id, _) = model(&app, &owner, "watched").await;
    let rx = receiver(0, StatusCode::OK).await;
    let answers = futures_util::future::join_all((0..24).map(|n| {
        app.gql(
            Some(&owner),
            CREATE,
            json!({ "i": { "modelId": model_id, "url": format!("{}?n={n}", rx.url) } }),
        )
    }))
    .await;
    let codes: Vec<&str> = answers.iter().map(|a| a.code_or_ok()).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "OK").count(),
        20,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "CONFLICT").count(),
        4,
        "{codes:?}"
    );
}

#[tokio::test]
async fn gc_removes_old_events_with_their_delivery_log_but_not_pending_ones() {
    use modelhub::entities::{enums::DeliveryStatus, event, webhook_attempt, webhook_delivery};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
    let app = spawn_app().await;
    let owner = app.register("tidy").await;
    let (model_id, _) = model(&app, &owner, "aging").await;
    let rx = receiver(0, StatusCode::OK).await;
    webhook(
        &app,
        &owner,
        json!({ "modelId": model_id, "url": rx.url, "events": ["VERSION_CREATED"] }),
    )
    .await;
    for minor in 1..=3 {
        app.create_version(
            &owner,
            &model_id,
            json!({ "version": format!("1.{minor}.0") }),
            "w.safetensors",
            safetensors(20 + minor),
        )
        .await
        .data();
    }
    rx.wait_for("version.created", 3).await;
    let db = &app.state.db;
    let events = event::Entity::find().count(db).await.unwrap();
    let newest = event::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .max()
        .unwrap();
    let delivered = webhook_delivery::Entity::find().all(db).await.unwrap();
    assert_eq!(delivered.len(), 3);
    // Everything is 40 days old; one delivery is still waiting to be sent.
    let old = chrono::Utc::now() - chrono::Duration::days(40);
    event::Entity::update_many()
        .col_expr(event::Column::CreatedAt, Expr::value(old))
        .exec(db)
        .await
        .unwrap();
    let waiting = delivered.iter().min_by_key(|d| d.event_seq).unwrap();
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Status,
            Expr::value(DeliveryStatus::Pending),
        )
        .col_expr(
            webhook_delivery::Column::NextAttemptAt,
            Expr::value(chrono::Utc::now() + chrono::Duration::days(1)),
        )
        .filter(webhook_delivery::Column::Id.eq(waiting.id))
        .exec(db)
        .await
        .unwrap();

    let report = modelhub::services::maintenance::gc(&app.state, Duration::from_secs(3600))
        .await
        .unwrap();
    // Kept: the event still to be sent, and the newest one (the sequence goes on from it).
    assert_eq!(report.events_purged, events - 2);
    let mut left: Vec<i64> = event::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    left.sort_unstable();
    assert_eq!(left, [waiting.event_seq, newest]);
    let deliveries = webhook_delivery::Entity::find().all(db).await.unwrap();
    assert_eq!(deliveries.len(), 1, "the others went with their events");
    assert_eq!(deliveries[0].id, waiting.id);
    let attempts = webhook_attempt::Entity::find().all(db).await.unwrap();
    assert!(attempts.iter().all(|a| a.delivery_id == waiting.id));

    // Young events stay.
    let again = modelhub::services::maintenance::gc(&app.state, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(again.events_purged, 0);
}
