//! Downloads: access rules, signed links, ranges, conditional requests, headers, counting.

use serde_json::json;

use crate::helpers::{TestApp, random_forest, sha256_hex, spawn_app};

async fn uploaded(app: &TestApp, token: &str) -> (String, String, Vec<u8>) {
    let bytes = random_forest();
    let answer = app
        .create_model(
            token,
            json!({ "name": "Forest Model", "framework": "scikit-learn", "version": "v1.0.0" }),
            "forest.joblib",
            bytes.clone(),
        )
        .await;
    let model = &answer.data()["createModel"];
    (
        model["id"].as_str().unwrap().to_owned(),
        model["currentVersion"]["id"].as_str().unwrap().to_owned(),
        bytes,
    )
}

#[tokio::test]
async fn files_stream_with_headers_ranges_and_conditions() {
    let app = spawn_app().await;
    let token = app.register("fetcher").await;
    let (_, version_id, bytes) = uploaded(&app, &token).await;
    let url = format!("{}/files/{version_id}", app.base);
    let size = bytes.len();

    let full = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 200);
    let headers = full.headers().clone();
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], size.to_string().as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"Forest_Model-v1.0.0.joblib\""
    );
    assert_eq!(full.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let partial = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()["content-range"],
        format!("bytes 10-19/{size}").as_str()
    );
    assert_eq!(partial.bytes().await.unwrap().as_ref(), &bytes[10..20]);

    let suffix = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .header("Range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &bytes[size - 5..]);

    let beyond = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .header("Range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );

    let cached = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());

    // Only downloads that start at byte 0 count: the full one, not the ranges or the 304.
    app.flush_downloads().await;
    let counts = app
        .gql(
            Some(&token),
            "query($id: ID!) { modelVersion(id: $id) { downloads model { downloads } } }",
            json!({ "id": version_id }),
        )
        .await;
    assert_eq!(counts.data()["modelVersion"]["downloads"], 1);
    assert_eq!(counts.data()["modelVersion"]["model"]["downloads"], 1);
    assert_eq!(app.count_rows("download_events").await, 1);
}

#[tokio::test]
async fn downloads_follow_visibility_and_signed_links() {
    let app = spawn_app().await;
    let owner = app.register("dl-owner").await;
    let other = app.register("dl-other").await;
    let (model_id, version_id, bytes) = uploaded(&app, &owner).await;
    let url = format!("{}/files/{version_id}", app.base);

    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 404);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(&other)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let bad_token = app
        .client
        .get(&url)
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status(), 401);

    let signed = app.download_url(Some(&owner), &version_id).await;
    assert!(signed.starts_with(&url), "{signed}");
    let fetched = app.client.get(&signed).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let tampered = app.client.get(format!("{signed}x")).send().await.unwrap();
    assert_eq!(tampered.status(), 401);
    // A link for one version does not open another.
    let other_model = app
        .create_model(
            &owner,
            json!({ "name": "Second", "framework": "x", "version": "1.0.0" }),
            "b.joblib",
            random_forest(),
        )
        .await;
    let other_version = other_model.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = signed.split("token=").nth(1).unwrap();
    let misused = app
        .client
        .get(format!("{}/files/{other_version}?token={token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(misused.status(), 403);

    // The seed's route serves the current version.
    let seed = format!("{}/api/v1/models/{model_id}/download", app.base);
    let current = app
        .client
        .get(&seed)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), 200);
    assert_eq!(current.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert_eq!(
        app.client
            .get(&seed)
            .bearer_auth(&other)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let nonsense = app
        .client
        .get(format!("{}/files/not-a-uuid", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(nonsense.status(), 404);
}

#[tokio::test]
async fn an_internal_error_is_logged_and_answered_with_the_request_id() {
    let app = spawn_app().await;
    let token = app.register("lost").await;
    let created = app
        .create_model(
            &token,
            serde_json::json!({ "name": "lost", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            crate::helpers::safetensors(8),
        )
        .await;
    let version_id = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The blob disappears behind the server's back.
    for file in app.blob_files() {
        if !file.to_string_lossy().contains("staging") {
            std::fs::remove_file(file).unwrap();
        }
    }
    let response = app
        .client
        .get(format!("{}/files/{version_id}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let header = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INTERNAL");
    assert_eq!(body["error"]["requestId"], header.as_str());
    assert_eq!(body["error"]["message"], "internal server error");
}

#[tokio::test]
async fn one_client_looping_over_a_file_counts_once_a_day_and_never_empties_the_cache() {
    let app = spawn_app().await;
    let owner = app.register("popular").await;
    let admin = app.admin("gatekeeper").await;
    let created = app
        .create_model(
            &owner,
            serde_json::json!({ "name": "popular", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            crate::helpers::safetensors(8),
        )
        .await;
    let model_id = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let version_id = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for mutation in [
        "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
        "mutation($id: ID!) { approveModel(modelId: $id) { id } }",
    ] {
        let token = if mutation.contains("approve") {
            &admin
        } else {
            &owner
        };
        app.gql(Some(token), mutation, serde_json::json!({ "id": model_id }))
            .await
            .data();
    }
    let changes = app.state.changes.current();
    for _ in 0..50 {
        let r = app
            .client
            .get(format!("{}/files/{version_id}", app.base))
            .header("Range", "bytes=0-0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        r.bytes().await.unwrap();
    }
    let r = app
        .client
        .get(format!("{}/files/{version_id}", app.base))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    r.bytes().await.unwrap();
    assert_eq!(
        app.state.changes.current(),
        changes,
        "counting is not a change"
    );
    assert_eq!(app.flush_downloads().await, 2);
    assert_eq!(app.flush_downloads().await, 0, "nothing is counted twice");
    let counts = app
        .gql(
            None,
            "query($id: ID!) { modelVersion(id: $id) { downloads model { downloads } } }",
            serde_json::json!({ "id": version_id }),
        )
        .await;
    assert_eq!(
        counts.data()["modelVersion"],
        serde_json::json!({ "downloads": 2, "model": { "downloads": 2 } })
    );
    // The same viewer again the same day, noted after the first write: still not counted.
    let r = app
        .client
        .get(format!("{}/files/{version_id}", app.base))
        .send()
        .await
        .unwrap();
    r.bytes().await.unwrap();
    assert_eq!(app.flush_downloads().await, 0);
    assert_eq!(app.count_rows("download_events").await, 2);
}

#[tokio::test]
async fn a_disabled_users_signed_links_stop_working() {
    let app = crate::helpers::spawn_with_cache(0).await;
    let owner = app.register("leaving").await;
    let admin = app.admin("keeper").await;
    let created = app
        .create_model(
            &owner,
            json!({ "name": "leaving", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            crate::helpers::safetensors(4),
        )
        .await;
    let version_id = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = app.download_url(Some(&owner), &version_id).await;
    let me = app.gql(Some(&owner), "{ me { id } }", json!({})).await;
    let user_id = me.data()["me"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { disableUser(userId: $id) { id } }",
        json!({ "id": user_id }),
    )
    .await
    .data();
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
}
