//! Uploads are authorized from their `operations` and `map` parts, before a byte of a file is
//! read: callers without WRITE, uploads to someone else's model and uploads past the budget
//! are answered at once, and the connection is closed rather than the file read.

use serde_json::json;

use crate::helpers::{
    Options, TestApp, safetensors, send_head_of_huge_form, spawn_app, spawn_with,
};

/// Sends a GraphQL multipart upload's `operations` and `map`, then the head of a 1 GiB file
/// and its first MiB only (see [`send_head_of_huge_form`]).
async fn send_head_of_huge_upload(
    app: &TestApp,
    token: Option<&str>,
    operations: serde_json::Value,
) -> (u16, String) {
    let parts = [
        ("operations", operations.to_string()),
        ("map", r#"{"0":["variables.file"]}"#.to_owned()),
    ];
    send_head_of_huge_form(app, "/graphql", token, &parts, "0").await
}

fn create_model_operations() -> serde_json::Value {
    json!({
        "query": "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id } }",
        "variables": { "input": { "name": "huge", "framework": "test", "version": "1.0.0" }, "file": null },
    })
}

#[tokio::test]
async fn an_anonymous_upload_is_refused_before_its_file_is_read() {
    let app = spawn_app().await;
    let (status, answer) = send_head_of_huge_upload(&app, None, create_model_operations()).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("UNAUTHENTICATED"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
    assert_eq!(app.count_rows("models").await, 0);
}

#[tokio::test]
async fn read_tokens_and_strangers_are_refused_before_the_file_is_read() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let created = app
        .create_model(
            &owner,
            json!({ "name": "mine", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(4),
        )
        .await;
    let model_id = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read_token = app
        .gql(
            Some(&owner),
            "mutation { createApiToken(input: { name: \"ro\", scopes: [READ] }) { token } }",
            json!({}),
        )
        .await;
    let read_token = read_token.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.blob_files();

    let (status, answer) =
        send_head_of_huge_upload(&app, Some(&read_token), create_model_operations()).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("FORBIDDEN"), "{answer}");

    let stranger = app.register("stranger").await;
    let version = json!({
        "query": "mutation($id: ID!, $input: CreateVersionInput!, $file: Upload!) { createModelVersion(modelId: $id, input: $input, file: $file) { id } }",
        "variables": { "id": model_id, "input": { "version": "2.0.0" }, "file": null },
    });
    let (status, answer) = send_head_of_huge_upload(&app, Some(&stranger), version.clone()).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("NOT_FOUND"), "{answer}");
    // The same through an inline argument and an alias.
    let inline = json!({
        "query": format!("mutation($input: CreateVersionInput!, $file: Upload!) {{ sneaky: createModelVersion(modelId: \"{model_id}\", input: $input, file: $file) {{ id }} }}"),
        "variables": { "input": { "version": "2.0.0" }, "file": null },
    });
    let (status, answer) = send_head_of_huge_upload(&app, Some(&stranger), inline).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(app.blob_files(), before);
    assert_eq!(app.count_rows("model_versions").await, 1);
}

/// One file part mapped to `n` aliased `createModel` mutations.
async fn one_file_for_models(app: &TestApp, token: &str, n: usize) -> crate::helpers::Gql {
    let aliases: String = (0..n)
        .map(|i| format!("m{i}: createModel(input: {{ name: \"m{i}\", framework: \"test\", version: \"1.0.0\" }}, file: $file) {{ id }} "))
        .collect();
    app.upload(
        Some(token),
        &format!("mutation($file: Upload!) {{ {aliases} }}"),
        json!({}),
        "w.safetensors",
        safetensors(4),
    )
    .await
}

#[tokio::test]
async fn one_file_mapped_to_many_mutations_costs_one_upload_each() {
    let app = spawn_with(Options {
        rate_limits: modelhub::services::rate_limit::Rules {
            upload: "3/3600".parse().unwrap(),
            ..Options::default().rate_limits
        },
        ..Options::default()
    })
    .await;
    let owner = app.register("batcher").await;
    let many = one_file_for_models(&app, &owner, 5).await;
    assert_eq!(many.code(), "RATE_LIMITED", "{:?}", many.body);
    assert_eq!(app.count_rows("models").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
    // Within the budget: three versions from one file part.
    let three = one_file_for_models(&app, &owner, 3).await;
    three.data();
    assert_eq!(app.count_rows("models").await, 3);
    let over = app
        .create_model(
            &owner,
            json!({ "name": "one-more", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(4),
        )
        .await;
    assert_eq!(over.code(), "RATE_LIMITED");
}
