//! The seed's REST paths: the upload form with its field names, the list of models with their
//! versions (paged, a constant number of statements), one model, the admin dashboard, the
//! same policy as GraphQL, refusals before the file is read, and the seed's own usage examples
//! run as written (curl and Python `requests`).

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, random_forest, send_head_of_huge_form, service_setting, sha256_hex, spawn_app,
};

/// The seed's upload form, `model_file` last.
fn seed_form(name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("name", name.to_owned())
        .text("description", "A great model for classification")
        .text("framework", "scikit-learn")
        .text("version", "v1.0.0")
        .text("format", "joblib")
        .text("task_type", "classification")
        .text("tags", r#"["classification", "scikit-learn"]"#)
        .text("license", "MIT")
        .text("changelog", "Initial release")
        .text("metadata", r#"{"accuracy": 0.95}"#)
        .part(
            "model_file",
            reqwest::multipart::Part::bytes(bytes).file_name("model.joblib"),
        )
}

async fn post_form(
    app: &TestApp,
    token: Option<&str>,
    form: reqwest::multipart::Form,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/api/v1/models/", app.base))
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get_json(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}{path}", app.base)
    };
    let mut request = app.client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    let (url, rel) = link.split_once(';')?;
    (rel.trim() == r#"rel="next""#).then(|| {
        url.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    })
}

#[tokio::test]
async fn the_seed_upload_form_creates_a_model_that_the_rest_paths_show() {
    let app = spawn_app().await;
    let owner = app.register("seed-owner").await;
    let stranger = app.register("seed-stranger").await;
    let admin = app.admin("seed-admin").await;
    let bytes = random_forest();

    let (status, created) =
        post_form(&app, Some(&owner), seed_form("My ML Model", bytes.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "My ML Model");
    assert_eq!(created["description"], "A great model for classification");
    assert_eq!(created["framework"], "scikit-learn");
    assert_eq!(created["task_type"], "classification");
    assert_eq!(created["tags"], json!(["classification", "scikit-learn"]));
    assert_eq!(
        created["license"], "mit",
        "licenses are keywords, kept in lower case"
    );
    assert_eq!(created["owner"], "seed-owner");
    assert_eq!(created["current_version"], "v1.0.0");
    assert_eq!(created["approval_status"], "draft");
    assert_eq!(created["visibility"], "private");
    let version = &created["versions"][0];
    assert_eq!(created["versions"].as_array().unwrap().len(), 1);
    assert_eq!(version["version"], "v1.0.0");
    assert_eq!(version["format"], "joblib");
    assert_eq!(version["changelog"], "Initial release");
    assert_eq!(version["model_metadata"], json!({ "accuracy": 0.95 }));
    assert_eq!(version["size_bytes"], bytes.len());
    assert!((version["size_mb"].as_f64().unwrap() - bytes.len() as f64 / 1048576.0).abs() < 1e-9);
    assert_eq!(version["sha256"], sha256_hex(&bytes));
    assert_eq!(version["inspection_status"], "safe");
    assert_eq!(
        version["s3_path"],
        format!(
            "blobs/sha256/{}/{}",
            &sha256_hex(&bytes)[..2],
            sha256_hex(&bytes)
        )
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // The version's signed link serves the same bytes; so does the seed's download path.
    let signed = app
        .client
        .get(version["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    assert_eq!(signed.bytes().await.unwrap(), bytes);

    // GraphQL sees what the form stored.
    let seen = app
        .gql(
            Some(&owner),
            "query($id: ID!) { model(id: $id) { name framework tags currentVersion { version format sha256 metadata } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(seen.data()["model"]["currentVersion"]["format"], "JOBLIB");
    assert_eq!(
        seen.data()["model"]["currentVersion"]["metadata"],
        json!({ "accuracy": 0.95 })
    );

    // One model: its owner sees it; to anyone else a private model does not exist.
    let (status, _, shown) = get_json(&app, Some(&owner), &format!("/api/v1/models/{id}")).await;
    assert_eq!(status, 200);
    // The same, but for the signed link's expiry.
    let without_links = |mut model: Value| {
        for version in model["versions"].as_array_mut().unwrap() {
            version.as_object_mut().unwrap().remove("download_url");
        }
        model
    };
    assert_eq!(without_links(shown), without_links(created.clone()));
    for token in [None, Some(stranger.as_str())] {
        let (status, _, body) = get_json(&app, token, &format!("/api/v1/models/{id}")).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        let (status, _, listed) = get_json(&app, token, "/api/v1/models/").await;
        assert_eq!(status, 200);
        assert_eq!(listed, json!([]));
    }
    let (status, _, _) = get_json(&app, None, "/api/v1/models/not-a-uuid").await;
    assert_eq!(status, 404);

    // Published, it is everyone's; the dashboard counted the request on the way.
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
        json!({ "id": id }),
    )
    .await
    .data();
    let (status, _, dashboard) =
        get_json(&app, Some(&admin), "/api/v1/admin/analytics/dashboard").await;
    assert_eq!(status, 200, "{dashboard}");
    assert_eq!(dashboard["total_models"], 1);
    assert_eq!(dashboard["total_versions"], 1);
    assert_eq!(dashboard["pending_approvals"], 1);
    assert_eq!(dashboard["total_users"], 3);
    assert_eq!(dashboard["storage_used_bytes"], bytes.len());
    assert_eq!(
        dashboard["storage_by_framework"][0]["framework"],
        "scikit-learn"
    );
    assert_eq!(dashboard["downloads_per_day"].as_array().unwrap().len(), 30);
    for token in [None, Some(owner.as_str())] {
        let (status, _, body) = get_json(&app, token, "/api/v1/admin/analytics/dashboard").await;
        assert!(status == 401 || status == 403, "{status} {body}");
    }
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { approveModel(modelId: $id) { id } }",
        json!({ "id": id }),
    )
    .await
    .data();
    let (_, _, listed) = get_json(&app, None, "/api/v1/models/").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["approval_status"], "approved");
    let (_, _, dashboard) = get_json(&app, Some(&admin), "/api/v1/admin/analytics/dashboard").await;
    assert_eq!(dashboard["pending_approvals"], 0);
    assert_eq!(dashboard["models_by_status"]["approved"], 1);
}

#[tokio::test]
async fn the_model_list_pages_with_links_in_a_constant_number_of_statements() {
    let app = spawn_app().await;
    let owner = app.register("pager").await;
    for i in 0..7 {
        let (status, body) = post_form(
            &app,
            Some(&owner),
            seed_form(&format!("model {i}"), random_forest()),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    // A second version on one model shows in its `versions`, newest first.
    let (_, _, all) = get_json(
        &app,
        Some(&owner),
        "/api/v1/models/?limit=100&sort=name&order=asc",
    )
    .await;
    let first_id = all[0]["id"].as_str().unwrap().to_owned();
    app.upload(
        Some(&owner),
        "mutation($id: ID!, $file: Upload!) { createModelVersion(modelId: $id, input: { version: \"v1.1.0\" }, file: $file) { id } }",
        json!({ "id": first_id }),
        "model.joblib",
        random_forest(),
    )
    .await
    .data();

    // The token is resolved (and cached) once; each page then costs the same.
    get_json(&app, Some(&owner), "/api/v1/models/?limit=1").await;
    let mut seen = Vec::new();
    let mut statements = Vec::new();
    let mut url = format!("{}/api/v1/models/?limit=3&sort=name&order=asc", app.base);
    loop {
        let before = app.statements();
        let (status, headers, page) = get_json(&app, Some(&owner), &url).await;
        statements.push(app.statements() - before);
        assert_eq!(status, 200, "{page}");
        seen.extend(page.as_array().unwrap().iter().cloned());
        match next_link(&headers) {
            Some(next) => url = next,
            None => break,
        }
    }
    let names: Vec<&str> = seen.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        (0..7).map(|i| format!("model {i}")).collect::<Vec<_>>()
    );
    assert_eq!(statements.len(), 3, "pages of 3, 3 and 1");
    assert!(
        statements.iter().all(|n| *n == statements[0]),
        "the same statements for pages of 3 and 1: {statements:?}"
    );
    assert_eq!(seen[0]["current_version"], "v1.1.0");
    let labels: Vec<&str> = seen[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["v1.1.0", "v1.0.0"]);

    // Filters and bad parameters.
    let (_, _, found) = get_json(&app, Some(&owner), "/api/v1/models/?search=model%203").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    for bad in [
        "limit=0",
        "limit=101",
        "sort=size",
        "order=up",
        "cursor=nonsense",
    ] {
        let (status, _, body) =
            get_json(&app, Some(&owner), &format!("/api/v1/models/?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "BAD_USER_INPUT", "{bad}");
    }
}

/// Sends the seed form's head with `fields`, then the head of a 1 GiB `model_file` and its
/// first MiB only.
async fn send_form_head(
    app: &TestApp,
    token: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let parts: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    send_head_of_huge_form(app, "/api/v1/models/", token, &parts, "model_file").await
}

#[tokio::test]
async fn bad_forms_and_callers_are_refused_before_the_file_is_read() {
    let app = spawn_app().await;
    let owner = app.register("form-owner").await;
    let read_only = app
        .gql(
            Some(&owner),
            "mutation { createApiToken(input: { name: \"ro\", scopes: [READ] }) { token } }",
            json!({}),
        )
        .await;
    let read_only = read_only.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let good = [
        ("name", "huge"),
        ("framework", "scikit-learn"),
        ("version", "v1.0.0"),
    ];
    // (token, form fields, status, what the answer says)
    type Case<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (None, good.to_vec(), 401, "UNAUTHENTICATED"),
        (Some(&read_only), good.to_vec(), 403, "FORBIDDEN"),
        (
            Some(&owner),
            vec![("framework", "scikit-learn")],
            400,
            "name: is required",
        ),
        (
            Some(&owner),
            vec![("name", "huge")],
            400,
            "framework: is required",
        ),
        (
            Some(&owner),
            [&good[..], &[("colour", "red")]].concat(),
            400,
            "colour: is not a field",
        ),
        (
            Some(&owner),
            [&good[..], &[("format", "zip")]].concat(),
            400,
            "`zip` is not a format",
        ),
        (
            Some(&owner),
            [&good[..], &[("tags", "[1, 2")]].concat(),
            400,
            "tags: must be a JSON array",
        ),
        (
            Some(&owner),
            [&good[..], &[("metadata", "{oops")]].concat(),
            400,
            "metadata: is not valid JSON",
        ),
        (
            Some(&owner),
            [&good[..], &[("name", "again")]].concat(),
            400,
            "name: is repeated",
        ),
    ];
    for (token, fields, status, expected) in cases {
        let (got, answer) = send_form_head(&app, token, &fields).await;
        assert_eq!(got, status, "{fields:?}: {answer}");
        assert!(answer.contains(expected), "{fields:?}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
    assert_eq!(app.count_rows("models").await, 0);

    // Whole forms: the file missing, or not last; a name taken.
    let (status, body) = post_form(
        &app,
        Some(&owner),
        reqwest::multipart::Form::new()
            .text("name", "no file")
            .text("framework", "scikit-learn"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model_file: is missing")
    );
    let (status, body) = post_form(
        &app,
        Some(&owner),
        seed_form("late field", random_forest()).text("license", "MIT"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("after `model_file`"),
        "{body}"
    );
    assert!(
        app.blob_files().is_empty(),
        "the refused file was not kept: {:?}",
        app.blob_files()
    );
    let (status, _) = post_form(&app, Some(&owner), seed_form("taken", random_forest())).await;
    assert_eq!(status, 201);
    let (status, body) = post_form(&app, Some(&owner), seed_form("taken", random_forest())).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");
    assert_eq!(app.count_rows("models").await, 1);
    assert_eq!(app.blob_files().len(), 1);
}

#[tokio::test]
async fn the_seed_usage_examples_run_as_written() {
    let Some(python) = service_setting(
        "MODELHUB_TEST_SEED_PYTHON",
        "the_seed_usage_examples_run_as_written",
    ) else {
        return;
    };
    let app = spawn_app().await;
    let token = app.register("curl-user").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.joblib"), random_forest()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed/examples.sh");
    let mut command = std::process::Command::new("bash");
    command
        .arg(&script)
        .current_dir(dir.path())
        .env("HUB", &app.base)
        .env("TOKEN", &token)
        .env("PYTHON", &python);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let uploaded: Value = serde_json::from_slice(&read("upload.json")).unwrap();
    assert_eq!(uploaded["name"], "My ML Model");
    assert_eq!(uploaded["versions"][0]["model_metadata"]["accuracy"], 0.95);
    let models: Value = serde_json::from_slice(&read("models.json")).unwrap();
    assert_eq!(models.as_array().unwrap().len(), 1);
    assert_eq!(models[0]["id"], uploaded["id"]);
    assert_eq!(models[0]["versions"][0]["format"], "joblib");
    assert_eq!(read("downloaded_model.joblib"), random_forest());
    assert_eq!(app.flush_downloads().await, 1);
}
