//! A front-end's client stack against the hub: the pinned `@apollo/client` with
//! `apollo-upload-client`, automatic persisted queries and `graphql-ws` (tests/js/apollo.mjs),
//! run with the machine's Node.js.

use serde_json::Value;

use crate::helpers::{safetensors, service_setting, sha256_hex, spawn_app};

#[tokio::test]
async fn apollo_client_uploads_pages_subscribes_and_persists_queries() {
    let Some(node) = service_setting(
        "MODELHUB_TEST_NODE",
        "apollo_client_uploads_pages_subscribes_and_persists_queries",
    ) else {
        return;
    };
    let app = spawn_app().await;
    let token = app.register("apollo-user").await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (safetensors(32), safetensors(48));
    std::fs::write(dir.path().join("a.safetensors"), &first).unwrap();
    std::fs::write(dir.path().join("b.safetensors"), &second).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new(node);
    command
        .arg(root.join("tests/js/apollo.mjs"))
        .current_dir(root.join("tests/js"))
        .env("MODELHUB_URL", &app.base)
        .env("MODELHUB_TOKEN", &token)
        .env("MODELHUB_FILE", dir.path().join("a.safetensors"))
        .env("MODELHUB_FILE2", dir.path().join("b.safetensors"));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();

    // Uploads through the multipart link: the bytes the hub stored are the file's.
    let created = seen["created"].as_array().unwrap();
    assert_eq!(created.len(), 5);
    for model in created {
        assert_eq!(model["currentVersion"]["sha256"], sha256_hex(&first));
        assert_eq!(model["currentVersion"]["sizeBytes"], first.len());
        assert_eq!(model["currentVersion"]["inspection"]["status"], "SAFE");
    }
    // Cursor pages of two, in name order.
    assert_eq!(
        seen["pages"],
        serde_json::json!([
            ["apollo-a", "apollo-b"],
            ["apollo-c", "apollo-d"],
            ["apollo-e"]
        ])
    );
    // The subscriptions: an inspection already finished, then a new version's events.
    assert_eq!(seen["inspected"]["inspection"]["status"], "SAFE");
    assert_eq!(seen["inspected"]["id"], created[0]["currentVersion"]["id"]);
    let events = seen["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "VERSION_CREATED");
    assert_eq!(events[1]["type"], "VERSION_INSPECTED");
    for event in events {
        assert_eq!(event["version"]["id"], seen["added"]);
        assert_eq!(event["version"]["version"], "2.0.0");
    }
    let stored = app
        .gql(
            Some(&token),
            "query($id: ID!) { modelVersion(id: $id) { sha256 } }",
            serde_json::json!({ "id": seen["added"] }),
        )
        .await;
    assert_eq!(stored.data()["modelVersion"]["sha256"], sha256_hex(&second));

    // Persisted queries: every operation was first sent by its hash alone; each miss was
    // answered as the link expects and sent again with its query, queries over GET; the
    // first page, asked again, went by its hash alone.
    let requests = seen["requests"].as_array().unwrap();
    let count = |check: &dyn Fn(&Value) -> bool| requests.iter().filter(|r| check(r)).count();
    assert!(requests.iter().all(|r| r["status"] == 200), "{requests:?}");
    let misses = count(&|r| r["missed"] == true);
    assert_eq!(
        misses,
        count(&|r| r["sentQuery"] == true),
        "one resend per miss: {requests:?}"
    );
    assert_eq!(
        count(&|r| r["multipart"] == true && r["missed"] == true),
        2,
        "the two upload mutations, once each"
    );
    assert_eq!(
        misses, 3,
        "createModel, the page query, createModelVersion: {requests:?}"
    );
    // Three pages by their hash alone, over GET: the second, the third and the first again.
    assert_eq!(
        count(&|r| r["method"] == "GET" && r["sentQuery"] == false && r["missed"] == false),
        3,
        "{requests:?}"
    );
}
