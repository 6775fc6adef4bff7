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

/// The store's entity tag of the object at `path` (below the app's prefix), read from the
/// bucket directly.
async fn object_etag(app: &crate::helpers::TestApp, path: &str) -> String {
    use object_store::ObjectStoreExt;
    let modelhub::config::StorageUrl::S3 { bucket, prefix } = &app.state.config.storage else {
        panic!("the app stores blobs on S3");
    };
    let bucket = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    bucket
        .head(&object_store::path::Path::from(format!("{prefix}/{path}")))
        .await
        .unwrap()
        .e_tag
        .unwrap()
}

/// The store's entity tag of the blob with this hash.
async fn blob_etag(app: &crate::helpers::TestApp, sha256: &str) -> String {
    object_etag(
        app,
        modelhub::storage::BlobStore::blob_path(sha256).as_ref(),
    )
    .await
}

#[tokio::test]
async fn objects_over_the_copy_limit_are_placed_by_copying_parts() {
    if test_s3_bucket("objects_over_the_copy_limit_are_placed_by_copying_parts").is_none() {
        return;
    }
    // CopyObject's limit lowered from 5 GiB to S3's smallest part, 5 MiB.
    let app = spawn_with(Options {
        s3: true,
        s3_options: modelhub::config::S3Options {
            max_single_copy: 5 * 1024 * 1024,
            presigned_downloads: false,
        },
        ..Options::default()
    })
    .await;
    let token = app.register("s3-copier").await;
    // 12 MiB: parts of 5, 5 and 2 MiB; and 4 MiB, under the limit.
    let big = safetensors(3 * 1024 * 1024);
    let small = safetensors(1024 * 1024);
    for (name, bytes) in [("big", &big), ("small", &small)] {
        let created = app
            .create_model(
                &token,
                json!({ "name": name, "version": "1.0.0", "framework": "PYTORCH" }),
                "w.safetensors",
                bytes.clone(),
            )
            .await;
        let version = &created.data()["createModel"]["currentVersion"];
        let download = app
            .client
            .get(format!(
                "{}/files/{}",
                app.base,
                version["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 200);
        assert!(download.bytes().await.unwrap() == *bytes);
    }
    // A multipart object's entity tag ends with its part count; a copied one's does not.
    assert!(
        blob_etag(&app, &sha256_hex(&big)).await.ends_with("-3\""),
        "{}",
        blob_etag(&app, &sha256_hex(&big)).await
    );
    assert!(!blob_etag(&app, &sha256_hex(&small)).await.contains('-'));
    assert_eq!(
        app.state.blobs.sweep_staging(Duration::ZERO).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn downloads_are_sent_to_the_store_by_a_presigned_redirect() {
    if test_s3_bucket("downloads_are_sent_to_the_store_by_a_presigned_redirect").is_none() {
        return;
    }
    let app = spawn_with(Options {
        s3: true,
        s3_options: modelhub::config::S3Options {
            max_single_copy: 5 * 1024 * 1024 * 1024,
            presigned_downloads: true,
        },
        ..Options::default()
    })
    .await;
    let token = app.register("s3-reader").await;
    let big = safetensors(3 * 1024 * 1024);
    let created = app
        .create_model(
            &token,
            json!({ "name": "far-away", "version": "1.0.0", "framework": "PYTORCH" }),
            "w.safetensors",
            big.clone(),
        )
        .await;
    let id = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/files/{id}", app.base);

    // The hub answers with a redirect and no body: the bytes come from the store.
    let not_following = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = not_following
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(
        redirect.headers()["etag"],
        format!("\"{}\"", sha256_hex(&big)).as_str()
    );
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&std::env::var("AWS_ENDPOINT").unwrap()),
        "{location}"
    );
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert_eq!(redirect.bytes().await.unwrap().len(), 0);
    // The link works without the hub's credentials, and names the file as the hub would.
    let direct = not_following.get(&location).send().await.unwrap();
    assert_eq!(direct.status(), 200);
    assert_eq!(
        direct.headers()["content-disposition"],
        "attachment; filename=\"far-away-1.0.0.safetensors\""
    );
    assert!(direct.bytes().await.unwrap() == big);

    // A client that follows redirects gets the bytes, a range included.
    let whole = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap() == big);
    let part = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=8000000-8000009")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), big[8_000_000..8_000_010]);
    // A HEAD is answered by the hub; a stranger is refused before any link is made (the model
    // is private until approved); an
    // unchanged copy is confirmed without one.
    let head = app
        .client
        .head(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        big.len().to_string().as_str()
    );
    let stranger = app.register("s3-stranger").await;
    let refused = not_following
        .get(&url)
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let unchanged = not_following
        .get(&url)
        .bearer_auth(&token)
        .header("if-none-match", format!("\"{}\"", sha256_hex(&big)))
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    // A redirected download counts as one the hub sends itself (once per viewer and day).
    app.flush_downloads().await;
    let counts = app
        .gql(
            Some(&token),
            "query($id: ID!) { modelVersion(id: $id) { downloads } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(counts.data()["modelVersion"]["downloads"], 1);
}

#[tokio::test]
async fn a_resumable_upload_is_joined_by_the_store_where_it_can() {
    if test_s3_bucket("a_resumable_upload_is_joined_by_the_store_where_it_can").is_none() {
        return;
    }
    const MIB: usize = 1024 * 1024;
    let app = spawn_with(Options {
        s3: true,
        ..Options::default()
    })
    .await;
    let token = app.register("s3-joiner").await;
    let weights = safetensors(3 * MIB);
    // 11 MiB then 1 MiB: S3 copies the two as the parts of one object. 1 MiB then 11: a part
    // under 5 MiB cannot come first, so the hub streams them into parts of 5 MiB.
    for (name, first, parts) in [("copied", 11 * MIB, "-2\""), ("streamed", MIB, "-3\"")] {
        let url = crate::resumable::create(&app, &token, weights.len()).await;
        for (from, to) in [(0, first), (first, weights.len())] {
            let sent = crate::resumable::patch(&app, &token, &url, from, &weights[from..to]).await;
            assert_eq!(sent.status(), 204);
        }
        let id = url.rsplit('/').next().unwrap();
        let whole = modelhub::storage::BlobStore::resumable_path(id.parse().unwrap(), "whole");
        let etag = object_etag(&app, whole.as_ref()).await;
        assert!(etag.ends_with(parts), "{name}: {etag}");
        let created = app
            .gql(
                Some(&token),
                "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { currentVersion { id sha256 } } }",
                json!({ "input": { "name": name, "framework": "PYTORCH", "version": "1.0.0" },
                        "files": [{ "path": "w.safetensors", "uploadId": id }] }),
            )
            .await;
        let version = &created.data()["createModel"]["currentVersion"];
        assert_eq!(version["sha256"], sha256_hex(&weights));
        let download = app
            .client
            .get(format!(
                "{}/files/{}",
                app.base,
                version["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(download.bytes().await.unwrap() == weights, "{name}");
    }
}
