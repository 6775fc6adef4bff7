//! The response cache of catalog reads and the credential cache: a repeated read costs no SQL,
//! each viewer has their own answers, and every change (a mutation, a download, a disabled
//! account) shows at once.

use serde_json::json;

use crate::helpers::{TestApp, safetensors, spawn_with_cache};

/// An app whose caches keep answers for ten minutes: what changes within a test is what a
/// change made stale, not what aged out.
async fn spawn_app() -> TestApp {
    spawn_with_cache(600).await
}

const LIST: &str = "{ models(first: 10) { edges { node { name description downloads } } } }";

#[tokio::test]
async fn repeated_catalog_reads_are_answered_without_sql() {
    let app = spawn_app().await;
    let token = app.register("cached").await;
    app.create_model(
        &token,
        json!({ "name": "cached", "version": "1.0.0", "framework": "PYTORCH" }),
        "w.safetensors",
        safetensors(4),
    )
    .await
    .data();
    let first = app.gql(None, LIST, json!({})).await;
    let before = app.statements();
    let again = app.gql(None, LIST, json!({})).await;
    assert_eq!(again.body, first.body);
    assert_eq!(app.statements(), before, "an anonymous repeat runs no SQL");
    // Nor does a signed-in viewer's: their account, as read for the first, is reused too.
    app.gql(Some(&token), LIST, json!({})).await.data();
    let before = app.statements();
    app.gql(Some(&token), LIST, json!({})).await.data();
    assert_eq!(app.statements(), before);
    // A mutation that changes nothing leaves the cached answers alone.
    app.gql(None, "mutation { __typename }", json!({}))
        .await
        .data();
    let before = app.statements();
    app.gql(Some(&token), LIST, json!({})).await.data();
    assert_eq!(app.statements(), before);
    // A document that also reads something else is executed every time.
    let mixed = "{ me { username } models(first: 1) { totalCount } }";
    app.gql(Some(&token), mixed, json!({})).await.data();
    let before = app.statements();
    app.gql(Some(&token), mixed, json!({})).await.data();
    assert!(app.statements() > before, "the page is read again");
}

#[tokio::test]
async fn cached_answers_are_per_viewer_and_changes_show_at_once() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("other").await;
    let created = app
        .create_model(
            &owner,
            json!({ "name": "secret", "version": "1.0.0", "framework": "PYTORCH" }),
            "w.safetensors",
            safetensors(4),
        )
        .await;
    let model = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let version = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let names = |answer: &crate::helpers::Gql| -> Vec<String> {
        answer.data()["models"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // The owner's answer, now cached, is never given to anyone else.
    assert_eq!(
        names(&app.gql(Some(&owner), LIST, json!({})).await),
        ["secret"]
    );
    assert!(names(&app.gql(None, LIST, json!({})).await).is_empty());
    assert!(names(&app.gql(Some(&other), LIST, json!({})).await).is_empty());

    // A mutation shows in the next read.
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { updateModel(id: $id, input: { description: \"changed\" }) { id } }",
        json!({ "id": model }),
    )
    .await
    .data();
    let read = app.gql(Some(&owner), LIST, json!({})).await;
    assert_eq!(
        read.data()["models"]["edges"][0]["node"]["description"],
        "changed"
    );

    // A download's count does not empty the cache: counts may lag by its time to live.
    let changes = app.state.changes.current();
    let downloaded = app
        .client
        .get(format!("{}/files/{version}", app.base))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), 200);
    downloaded.bytes().await.unwrap();
    assert_eq!(app.flush_downloads().await, 1);
    assert_eq!(app.state.changes.current(), changes);
    let before = app.statements();
    let read = app.gql(Some(&owner), LIST, json!({})).await;
    assert_eq!(read.data()["models"]["edges"][0]["node"]["downloads"], 0);
    assert_eq!(app.statements(), before, "answered from the cache");

    // Answers with errors are not kept: the valid half of this one runs SQL every time.
    let half = "{ models(first: 1) { totalCount } bad: models(first: 500) { totalCount } }";
    app.gql(Some(&owner), half, json!({})).await;
    let before = app.statements();
    let again = app.gql(Some(&owner), half, json!({})).await;
    assert_eq!(again.code(), "BAD_USER_INPUT");
    assert_eq!(again.body["data"]["models"]["totalCount"], 1);
    assert!(app.statements() > before);
}

#[tokio::test]
async fn a_disabled_account_is_refused_at_once_despite_the_cache() {
    let app = spawn_app().await;
    let admin = app.admin("root").await;
    let token = app.register("soon-gone").await;
    let me = app.gql(Some(&token), "{ me { id } }", json!({})).await;
    let id = me.data()["me"]["id"].as_str().unwrap().to_owned();
    app.gql(Some(&token), LIST, json!({})).await.data();
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { disableUser(userId: $id) { id } }",
        json!({ "id": id }),
    )
    .await
    .data();
    for query in [LIST, "{ me { id } }"] {
        let refused = app.gql(Some(&token), query, json!({})).await;
        assert_eq!(refused.code(), "UNAUTHENTICATED", "{query}");
        assert_eq!(refused.status, 401);
    }
}

#[tokio::test]
async fn credentials_stay_cached_across_catalog_changes_until_an_account_changes() {
    let app = spawn_app().await;
    let token = app.register("steady").await;
    let writer = app.register("busy-writer").await;
    let me = async || {
        let before = app.statements();
        app.gql(Some(&token), "{ me { username } }", json!({}))
            .await
            .data();
        app.statements() - before
    };
    app.warm_credential(&token).await;
    assert_eq!(me().await, 0, "read from the cache");
    // Another account's upload changes the catalog, not the caller's credential.
    app.create_model(
        &writer,
        json!({ "name": "churn", "framework": "PYTORCH", "version": "1.0.0" }),
        "w.safetensors",
        safetensors(2),
    )
    .await
    .data();
    assert_eq!(me().await, 0, "still cached after a catalog change");
    // Any change to accounts (here the writer ends its sessions) makes credentials stale.
    app.gql(
        Some(&writer),
        "mutation { revokeSessions { token } }",
        json!({}),
    )
    .await
    .data();
    assert!(me().await > 0, "read again after an account change");
}
