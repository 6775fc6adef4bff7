//! The Hugging Face protocol's upload path at the wire: LFS links refused before a byte is
//! read, objects whose bytes are not what they claim left out, parts that arrive in any order
//! or again, and received objects that no commit takes expiring and freeing their bytes.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Options, TestApp, sha256_hex as sha256, spawn_app, spawn_with};

/// `username`'s API token with READ and WRITE (and its id).
async fn write_token(app: &TestApp, session: &str) -> (String, String) {
    let created = app
        .gql(
            Some(session),
            "mutation { createApiToken(input: { name: \"hf\", scopes: [READ, WRITE] }) { token apiToken { id } } }",
            json!({}),
        )
        .await;
    let data = &created.data()["createApiToken"];
    (
        data["token"].as_str().unwrap().to_owned(),
        data["apiToken"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn create_repo(app: &TestApp, token: &str, name: &str) {
    let response = app
        .client
        .post(format!("{}/api/repos/create", app.base))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The batch answer for one object of `repo`.
async fn batch(app: &TestApp, token: &str, repo: &str, oid: &str, size: usize) -> Value {
    let response = app
        .client
        .post(format!("{}/{repo}.git/info/lfs/objects/batch", app.base))
        .bearer_auth(token)
        .header("content-type", "application/vnd.git-lfs+json")
        .json(&json!({ "operation": "upload", "transfers": ["basic", "multipart"], "objects": [{ "oid": oid, "size": size }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["objects"][0].clone()
}

/// Sends `bytes` to `repo` as one LFS object, in one `PUT` to the link the batch gives.
async fn send_whole(app: &TestApp, token: &str, repo: &str, bytes: &[u8]) {
    let object = batch(app, token, repo, &sha256(bytes), bytes.len()).await;
    let href = object["actions"]["upload"]["href"].as_str().unwrap();
    let sent = app
        .client
        .put(href)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
}

/// Sends the head of a `PUT` declaring `declared` bytes to `path_and_query`, then only its
/// first MiB, and reads the answer without sending more: its status line and body.
async fn put_head(app: &TestApp, path_and_query: &str, declared: usize) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "PUT {path_and_query} HTTP/1.1\r\nHost: {}\r\nContent-Length: {declared}\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&vec![0x5a; 1 << 20]).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server waited for the rest of the object");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

/// The path and query of an absolute link.
fn path_of(href: &str) -> String {
    let url = reqwest::Url::parse(href).unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

#[tokio::test]
async fn upload_links_are_refused_before_a_byte_is_read() {
    let app = spawn_app().await;
    let owner = app.register("lfs-owner").await;
    let (token, token_id) = write_token(&app, &owner).await;
    create_repo(&app, &token, "guarded").await;
    let size = 32 << 20;
    let oid = "ab".repeat(32);
    let object = batch(&app, &token, "lfs-owner/guarded", &oid, size).await;
    let href = object["actions"]["upload"]["href"].as_str().unwrap();
    let genuine = path_of(href);

    // A link whose signature is not ours.
    let mut forged = genuine.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (status, answer) = put_head(&app, &forged, size).await;
    assert_eq!(status, 401, "{answer}");
    // The link sends to another object's address.
    let elsewhere = genuine.replace(&oid, &"cd".repeat(32));
    let (status, answer) = put_head(&app, &elsewhere, size).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("another object"), "{answer}");
    // The API token that asked for the link is revoked: the link is dead with it.
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { revokeApiToken(id: $id) }",
        json!({ "id": token_id }),
    )
    .await
    .data();
    let (status, answer) = put_head(&app, &genuine, size).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(app.count_rows("lfs_objects").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
}

#[tokio::test]
async fn an_object_is_kept_only_when_its_bytes_are_the_object_named() {
    let app = spawn_app().await;
    let owner = app.register("lfs-bytes").await;
    let (token, _) = write_token(&app, &owner).await;
    create_repo(&app, &token, "exact").await;
    let bytes = vec![7u8; 300_000];
    let oid = sha256(&bytes);
    let object = batch(&app, &token, "lfs-bytes/exact", &oid, bytes.len()).await;
    let href = object["actions"]["upload"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut other = bytes.clone();
    other[1000] = 8;
    let refused = app.client.put(&href).body(other).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("are not the object named")
    );
    assert_eq!(app.count_rows("lfs_objects").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());

    let kept = app.client.put(&href).body(bytes).send().await.unwrap();
    assert_eq!(kept.status(), 200);
    assert_eq!(app.count_rows("lfs_objects").await, 1);
    // Asked again, the object needs no upload.
    let again = batch(&app, &token, "lfs-bytes/exact", &oid, 300_000).await;
    assert!(again.get("actions").is_none(), "{again}");
}

#[tokio::test]
async fn parts_arrive_in_any_order_and_a_part_sent_again_is_told_apart() {
    let app = spawn_with(Options {
        max_upload_bytes: 256 << 20,
        ..Options::default()
    })
    .await;
    let owner = app.register("lfs-parts").await;
    let (token, _) = write_token(&app, &owner).await;
    create_repo(&app, &token, "parted").await;
    let bytes: Vec<u8> = (0..(64 << 20) + 12_345u32)
        .map(|i| (i % 253) as u8)
        .collect();
    let oid = sha256(&bytes);
    let object = batch(&app, &token, "lfs-parts/parted", &oid, bytes.len()).await;
    let upload = &object["actions"]["upload"];
    let chunk: usize = upload["header"]["chunk_size"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let part = |n: usize| bytes[(n - 1) * chunk..(n * chunk).min(bytes.len())].to_vec();
    let send = async |n: usize, body: Vec<u8>| {
        let url = upload["header"][n.to_string()].as_str().unwrap();
        let sent = app.client.put(url).body(body).send().await.unwrap();
        assert_eq!(sent.status(), 200);
        sent.headers()["etag"].to_str().unwrap().to_owned()
    };
    let complete = async |etags: &[&str]| {
        let parts: Vec<Value> = etags
            .iter()
            .enumerate()
            .map(|(i, etag)| json!({ "partNumber": i + 1, "etag": etag }))
            .collect();
        app.client
            .post(upload["href"].as_str().unwrap())
            .json(&json!({ "oid": oid, "parts": parts }))
            .send()
            .await
            .unwrap()
    };
    // Part 2 first; part 1 once with a byte wrong, then right.
    let second = send(2, part(2)).await;
    let mut wrong = part(1);
    wrong[5] ^= 1;
    let wrong = send(1, wrong).await;
    let first = send(1, part(1)).await;
    assert_ne!(wrong, first);
    // A part it never received is named.
    let missing = complete(&[&first, "\"0000\""]).await;
    assert_eq!(missing.status(), 400);
    assert!(missing.text().await.unwrap().contains("part 2"));
    // The wrong copy makes other bytes than the object's.
    let mixed = complete(&[&wrong, &second]).await;
    assert_eq!(mixed.status(), 400);
    assert_eq!(app.count_rows("lfs_objects").await, 0);
    let done = complete(&[&first, &second]).await;
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    assert_eq!(app.count_rows("lfs_objects").await, 1);
    let parts = app.blob_dir.join("lfs-parts");
    assert_eq!(
        std::fs::read_dir(&parts).unwrap().count(),
        0,
        "the parts and their folders are gone once joined: {:?}",
        crate::helpers::files_under(&parts)
    );

    // A commit names the object: a version with its bytes.
    let commit = [
        json!({ "key": "header", "value": { "summary": "weights" } }),
        json!({ "key": "lfsFile", "value": { "path": "big.bin", "algo": "sha256", "oid": oid, "size": bytes.len() } }),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let committed = app
        .client
        .post(format!(
            "{}/api/models/lfs-parts/parted/commit/main",
            app.base
        ))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(commit)
        .send()
        .await
        .unwrap();
    assert_eq!(
        committed.status(),
        200,
        "{}",
        committed.text().await.unwrap()
    );
    let download = app
        .client
        .get(format!(
            "{}/lfs-parts/parted/resolve/main/big.bin",
            app.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        download.headers()["x-linked-etag"],
        format!("\"{oid}\"").as_str()
    );
    assert_eq!(
        download.bytes().await.unwrap().len(),
        bytes.len(),
        "the version serves the joined object"
    );
    // The version holds the bytes now: the object's row is gone.
    assert_eq!(app.count_rows("lfs_objects").await, 0);
}

#[tokio::test]
async fn objects_no_commit_takes_expire_and_gc_frees_their_bytes() {
    let app = spawn_app().await;
    let owner = app.register("lfs-expiry").await;
    let (token, _) = write_token(&app, &owner).await;
    create_repo(&app, &token, "forgotten").await;
    let bytes = b"nobody commits me".to_vec();
    send_whole(&app, &token, "lfs-expiry/forgotten", &bytes).await;

    let gc = modelhub::services::maintenance::gc(&app.state, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (gc.deleted, gc.lfs_objects_expired),
        (0, 0),
        "a live object is kept"
    );
    assert_eq!(app.blob_files().len(), 1);

    app.state
        .db
        .execute_unprepared("UPDATE lfs_objects SET expires_at = created_at")
        .await
        .unwrap();
    let gc = modelhub::services::maintenance::gc(&app.state, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(gc.lfs_objects_expired, 1);
    assert_eq!(app.count_rows("lfs_objects").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
}

/// Posts a commit of these NDJSON lines to `repo`'s `main`.
async fn commit(app: &TestApp, token: &str, repo: &str, lines: &[Value]) -> reqwest::Response {
    let body: Vec<String> = lines.iter().map(Value::to_string).collect();
    app.client
        .post(format!("{}/api/models/{repo}/commit/main", app.base))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body.join("\n"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_commit_names_only_objects_the_hub_holds_for_the_caller() {
    let app = spawn_app().await;
    let owner = app.register("lfs-commit").await;
    let (token, _) = write_token(&app, &owner).await;
    create_repo(&app, &token, "named").await;
    let bytes = b"weights".to_vec();
    let oid = sha256(&bytes);
    let header = json!({ "key": "header", "value": { "summary": "first" } });
    let file = |oid: &str, size: usize| json!({ "key": "lfsFile", "value": { "path": "w.bin", "algo": "sha256", "oid": oid, "size": size } });
    let refused = commit(
        &app,
        &token,
        "lfs-commit/named",
        &[header.clone(), file(&oid, 7)],
    )
    .await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("was not uploaded"));

    send_whole(&app, &token, "lfs-commit/named", &bytes).await;
    let wrong = commit(
        &app,
        &token,
        "lfs-commit/named",
        &[header.clone(), file(&oid, 8)],
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.unwrap().contains("has 7 bytes, not 8"));
    assert_eq!(app.count_rows("model_versions").await, 0);
    assert_eq!(app.count_rows("version_drafts").await, 0);

    let made = commit(&app, &token, "lfs-commit/named", &[header, file(&oid, 7)]).await;
    assert_eq!(made.status(), 200);
    let answer: Value = made.json().await.unwrap();
    let oid_of_commit = answer["commitOid"].as_str().unwrap();
    assert_eq!(oid_of_commit.len(), 40);
    assert_eq!(
        answer["commitUrl"],
        format!("{}/lfs-commit/named/commit/{oid_of_commit}", app.base)
    );
}
