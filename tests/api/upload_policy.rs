//! Uploads are authorized from their `operations` and `map` parts, before a byte of a file is
//! read: callers without WRITE, uploads to someone else's model and uploads past the budget
//! are answered at once, and the connection is closed rather than the file read.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Options, TestApp, safetensors, spawn_app, spawn_with};

const BOUNDARY: &str = "modelhub-test-boundary";

/// Sends the head of a multipart upload that declares a 1 GiB file, then only its first MiB,
/// and reads the answer without sending more: its status line and body.
async fn send_head_of_huge_upload(
    app: &TestApp,
    token: Option<&str>,
    operations: serde_json::Value,
) -> (u16, String) {
    let declared_file = 1u64 << 30;
    let mut head_parts = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\":[\"variables.file\"]}}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let length = head_parts.len() as u64 + declared_file + tail.len() as u64;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {length}\r\n{auth}\r\n",
        app.addr
    );
    head_parts.insert_str(0, &request);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head_parts.as_bytes()).await.unwrap();
    // The first MiB of the file; the server may already have answered and stopped reading.
    let _ = stream.write_all(&vec![0x5a; 1 << 20]).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server waited for the rest of the file");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
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
