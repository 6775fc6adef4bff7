//! The blob store on S3 (any S3-compatible server; `.ci/run` starts one): multipart uploads,
//! streamed and ranged downloads, de-duplication, release and `verify`, with nothing left in
//! the staging area.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Options, safetensors, sha256_hex, spawn_with, test_s3_bucket};

#[tokio::test]
async fn models_round_trip_through_s3() {
    if test_s3_bucket("models_round_trip_through_s3").is_none() {
        return;
    }
    let app = spawn_with(Options {
        s3: true,
        ..Options::default()
    })
    .await;
    let token = app.register("s3-user").await;
    // 12 MiB: three parts of a multipart upload.
    let big = safetensors(3 * 1024 * 1024);
    let created = app
        .create_model(
            &token,
            json!({ "name": "on-s3", "version": "1.0.0", "framework": "PYTORCH" }),
            "w.safetensors",
            big.clone(),
        )
        .await;
    let first = created.data()["createModel"]["currentVersion"].clone();
    assert_eq!(first["sha256"], sha256_hex(&big));
    let model = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_id = first["id"].as_str().unwrap().to_owned();

    let download = |range: Option<&'static str>| {
        let mut request = app
            .client
            .get(format!("{}/files/{first_id}", app.base))
            .bearer_auth(&token);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send()
    };
    let whole = download(None).await.unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap() == big);
    let part = download(Some("bytes=8000000-8000009")).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), big[8_000_000..8_000_010]);

    // The same bytes again are stored once; other bytes make a second blob.
    let again = app
        .create_version(
            &token,
            &model,
            json!({ "version": "1.0.1" }),
            "w.safetensors",
            big.clone(),
        )
        .await;
    let again_id = again.data()["createModelVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_version(
        &token,
        &model,
        json!({ "version": "1.1.0" }),
        "w.safetensors",
        safetensors(8),
    )
    .await
    .data();
    assert_eq!(app.state.blobs.list_blobs().await.unwrap().len(), 2);

    // Once no version uses the big file, it goes.
    for id in [&first_id, &again_id] {
        app.gql(
            Some(&token),
            "mutation($id: ID!) { deleteModelVersion(id: $id) }",
            json!({ "id": id }),
        )
        .await
        .data();
    }
    let left = app.state.blobs.list_blobs().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].sha256, sha256_hex(&safetensors(8)));
    let (checked, problems) = modelhub::services::maintenance::verify(&app.state)
        .await
        .map_err(|e| e.message())
        .unwrap();
    assert_eq!((checked, problems), (1, vec![]));
    // Every staged upload has moved or been discarded.
    assert_eq!(
        app.state.blobs.sweep_staging(Duration::ZERO).await.unwrap(),
        0
    );
}
