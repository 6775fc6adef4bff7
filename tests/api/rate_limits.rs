//! The registration and upload rate limits: within the rule requests pass; past it they are
//! refused with RATE_LIMITED and a wait, and nothing of the refused request is stored.

use std::time::Duration;

use modelhub::services::rate_limit::Rule;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, safetensors, spawn_with};

fn per_hour(burst: u32) -> Rule {
    Rule {
        burst,
        period: Duration::from_secs(3600),
    }
}

/// Registers `username` as a client at `ip` (believed: the tests' proxy is trusted), returning
/// the HTTP response's `Retry-After` and its body.
async fn register_from(app: &TestApp, ip: &str, username: &str) -> (Option<u64>, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("x-forwarded-for", ip)
        .json(&json!({
            "query": "mutation($i: RegisterInput!) { register(input: $i) { token user { username } } }",
            "variables": { "i": { "username": username, "email": format!("{username}@example.com"), "password": "correct horse battery" } },
        }))
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (retry_after, response.json().await.unwrap())
}

async fn users_named(app: &TestApp, username: &str) -> i64 {
    app.count_rows(&format!("users WHERE username = '{username}'"))
        .await
}

#[tokio::test]
async fn registrations_past_the_rule_are_refused_and_store_nothing() {
    let mut options = Options::default();
    options.rate_limits.register = per_hour(3);
    options.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let app = spawn_with(options).await;

    // Within the rule: three accounts from one address.
    for i in 0..3 {
        let (retry_after, body) = register_from(&app, "198.51.100.7", &format!("early{i}")).await;
        assert!(body["errors"].is_null(), "registration {i}: {body}");
        assert_eq!(
            body["data"]["register"]["user"]["username"],
            format!("early{i}")
        );
        assert_eq!(retry_after, None);
    }
    assert_eq!(app.count_rows("users").await, 3);
    let audit_before = app.count_rows("audit_log").await;

    // The fourth is refused with the code and a wait, and leaves no account behind.
    let (retry_after, body) = register_from(&app, "198.51.100.7", "late").await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert!(
        body["data"].is_null() || body["data"]["register"].is_null(),
        "{body}"
    );
    let wait = body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    // 3 per hour: the next token is back in 20 minutes.
    assert!((1..=1200).contains(&wait), "{wait}");
    assert_eq!(retry_after, Some(wait));
    assert_eq!(app.count_rows("users").await, 3);
    assert_eq!(users_named(&app, "late").await, 0);
    assert_eq!(app.count_rows("audit_log").await, audit_before);
    let login = app
        .gql(
            None,
            "mutation { login(input: { username: \"late\", password: \"correct horse battery\" }) { token } }",
            json!({}),
        )
        .await;
    assert_eq!(login.code(), "UNAUTHENTICATED");

    // The budget is per client address: another one registers.
    let (_, body) = register_from(&app, "203.0.113.9", "elsewhere").await;
    assert_eq!(
        body["data"]["register"]["user"]["username"], "elsewhere",
        "{body}"
    );
    assert_eq!(users_named(&app, "elsewhere").await, 1);
    // And the limited address stays limited.
    let (_, body) = register_from(&app, "198.51.100.7", "later").await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(app.count_rows("users").await, 4);
}

#[tokio::test]
async fn uploads_past_the_rule_are_refused_and_store_nothing() {
    let mut options = Options::default();
    options.rate_limits.upload = per_hour(2);
    let app = spawn_with(options).await;
    let owner = app.register("uploader").await;

    // Within the rule: a model and a version of it.
    let created = app
        .create_model(
            &owner,
            json!({ "name": "limited", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(8),
        )
        .await;
    let model_id = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_version(
        &owner,
        &model_id,
        json!({ "version": "1.1.0" }),
        "w.safetensors",
        safetensors(9),
    )
    .await
    .data();
    let before = (
        app.count_rows("models").await,
        app.count_rows("model_versions").await,
        app.count_rows("audit_log").await,
        app.blob_files(),
    );
    assert_eq!((before.0, before.1, before.3.len()), (1, 2, 2));

    // Past it, a version and a model are both refused, with new bytes that would be a new
    // blob; nothing is stored or staged for them.
    let version = app
        .create_version(
            &owner,
            &model_id,
            json!({ "version": "1.2.0" }),
            "w.safetensors",
            safetensors(10),
        )
        .await;
    assert_eq!(version.code(), "RATE_LIMITED", "{:?}", version.body);
    assert!(version.extensions()["retryAfter"].as_u64().unwrap() >= 1);
    let model = app
        .create_model(
            &owner,
            json!({ "name": "one-too-many", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(11),
        )
        .await;
    assert_eq!(model.code(), "RATE_LIMITED", "{:?}", model.body);
    let after = (
        app.count_rows("models").await,
        app.count_rows("model_versions").await,
        app.count_rows("audit_log").await,
        app.blob_files(),
    );
    assert_eq!(after, before);

    // The budget is per user: someone else still uploads.
    let other = app.register("neighbour").await;
    app.create_model(
        &other,
        json!({ "name": "unlimited", "framework": "test", "version": "1.0.0" }),
        "w.safetensors",
        safetensors(11),
    )
    .await
    .data();
    assert_eq!(app.count_rows("models").await, 2);
    assert_eq!(app.blob_files().len(), 3);
}
