//! Uploads per the GraphQL multipart request spec: real clients' shapes, streaming, limits,
//! validation, atomicity and de-duplication.

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::helpers::{Options, random_forest, safetensors, sha256_hex, spawn_app, spawn_with};

fn seed_input() -> Value {
    json!({
        "name": "My ML Model",
        "description": "A great model for classification",
        "framework": "scikit-learn",
        "version": "v1.0.0",
        "format": "JOBLIB",
        "taskType": "classification",
        "tags": ["classification", "scikit-learn"],
        "license": "MIT",
        "changelog": "Initial release",
        "metadata": { "accuracy": 0.95 },
        "performanceMetrics": { "accuracy": 0.975 }
    })
}

#[tokio::test]
async fn seed_scenario_upload_list_download_byte_identical() {
    let app = spawn_app().await;
    let token = app.register("seed").await;
    let bytes = random_forest();
    let created = app
        .create_model(&token, seed_input(), "model.joblib", bytes.clone())
        .await;
    let model = &created.data()["createModel"];
    assert_eq!(model["name"], "My ML Model");
    let version = &model["currentVersion"];
    assert_eq!(version["version"], "v1.0.0");
    assert_eq!(version["format"], "JOBLIB");
    assert_eq!(version["sha256"], sha256_hex(&bytes));
    assert_eq!(version["sizeBytes"], bytes.len());

    let listed = app
        .gql(
            Some(&token),
            "{ models { totalCount edges { node { name framework taskType tags license owner { username } currentVersion { version sizeMb changelog metadata performanceMetrics downloadUrl } } } } }",
            json!({}),
        )
        .await;
    let data = listed.data();
    assert_eq!(data["models"]["totalCount"], 1);
    let node = &data["models"]["edges"][0]["node"];
    assert_eq!(node["framework"], "scikit-learn");
    assert_eq!(node["tags"], json!(["classification", "scikit-learn"]));
    assert_eq!(node["license"], "mit");
    assert_eq!(node["owner"]["username"], "seed");
    assert_eq!(
        node["currentVersion"]["metadata"],
        json!({ "accuracy": 0.95 })
    );
    assert_eq!(
        node["currentVersion"]["performanceMetrics"],
        json!({ "accuracy": 0.975 })
    );
    assert_eq!(node["currentVersion"]["sizeMb"], 0.06);

    let url = node["currentVersion"]["downloadUrl"].as_str().unwrap();
    let download = app.client.get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let body = download.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), sha256_hex(&bytes));
    assert_eq!(body.len(), bytes.len());
}

#[tokio::test]
async fn format_is_detected_when_omitted() {
    let app = spawn_app().await;
    let token = app.register("detect").await;
    let mut input = seed_input();
    input.as_object_mut().unwrap().remove("format");
    let created = app
        .create_model(&token, input, "forest.joblib", random_forest())
        .await;
    assert_eq!(
        created.data()["createModel"]["currentVersion"]["format"],
        "JOBLIB"
    );
    let st = app
        .create_model(
            &token,
            json!({ "name": "st", "framework": "pytorch", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(16),
        )
        .await;
    assert_eq!(
        st.data()["createModel"]["currentVersion"]["format"],
        "SAFETENSORS"
    );
}

#[tokio::test]
async fn each_invalid_field_is_bad_input_and_leaves_nothing_behind() {
    let app = spawn_app().await;
    let token = app.register("validator").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "version": "latest" }), "input.version"),
        (json!({ "version": "1.0" }), "input.version"),
        (
            json!({ "version": format!("1.0.0-{}0", "0.".repeat(28)) }),
            "input.version",
        ),
        (json!({ "format": "GGUF" }), "format"),
        (json!({ "format": "H5" }), "format"),
        (json!({ "name": "   " }), "input.name"),
        (json!({ "name": "a/b" }), "input.name"),
        (json!({ "name": "x".repeat(101) }), "input.name"),
        (json!({ "framework": "" }), "input.framework"),
        (json!({ "tags": ["ok", "not ok!"] }), "input.tags"),
        (
            json!({ "tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>() }),
            "input.tags",
        ),
        (json!({ "metadata": [1, 2, 3] }), "input.metadata"),
        (
            json!({ "metadata": { "blob": "x".repeat(70_000) } }),
            "input.metadata",
        ),
        (
            json!({ "performanceMetrics": "fast" }),
            "input.performanceMetrics",
        ),
        (
            json!({ "description": "nul \u{0} inside" }),
            "input.description",
        ),
        (
            json!({ "metadata": { "k": "nul \u{0} inside" } }),
            "input.metadata",
        ),
    ];
    for (patch, field) in cases {
        let mut input = seed_input();
        for (key, value) in patch.as_object().unwrap() {
            input[key] = value.clone();
        }
        let answer = app
            .create_model(&token, input, "model.joblib", random_forest())
            .await;
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{patch}: {}", answer.body);
        assert_eq!(answer.extensions()["field"], field, "{patch}");
    }
    let empty = app
        .create_model(&token, seed_input(), "model.joblib", Vec::new())
        .await;
    assert_eq!(empty.extensions()["field"], "file");
    assert_eq!(app.count_rows("models").await, 0);
    assert_eq!(app.count_rows("model_versions").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
}

#[tokio::test]
async fn duplicate_versions_and_names_conflict_without_orphans() {
    let app = spawn_app().await;
    let token = app.register("dup").await;
    let created = app
        .create_model(&token, seed_input(), "m.joblib", random_forest())
        .await;
    let id = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = app
        .create_model(&token, seed_input(), "m.joblib", random_forest())
        .await;
    assert_eq!(again.code(), "CONFLICT");
    assert!(again.message().starts_with("name"), "{}", again.message());

    // Same version, written differently, with other bytes: conflict, and the new blob is gone.
    let other = safetensors(8);
    let clash = app
        .create_version(
            &token,
            &id,
            json!({ "version": "1.0.0", "format": "SAFETENSORS" }),
            "w.safetensors",
            other.clone(),
        )
        .await;
    assert_eq!(clash.code(), "CONFLICT");
    assert!(clash.message().starts_with("version"));
    assert_eq!(app.count_rows("model_versions").await, 1);
    assert_eq!(app.blob_files().len(), 1);
    assert!(!app.blob_files()[0].ends_with(sha256_hex(&other)));
}

#[tokio::test]
async fn identical_files_are_stored_once() {
    let app = spawn_app().await;
    let token = app.register("dedup").await;
    let bytes = random_forest();
    let a = app
        .create_model(&token, seed_input(), "a.joblib", bytes.clone())
        .await;
    let model_id = a.data()["createModel"]["id"].as_str().unwrap().to_owned();
    let v2 = app
        .create_version(
            &token,
            &model_id,
            json!({ "version": "v1.1.0" }),
            "b.joblib",
            bytes.clone(),
        )
        .await;
    assert_eq!(v2.data()["createModelVersion"]["sizeBytes"], bytes.len());
    let mut other = seed_input();
    other["name"] = json!("Another");
    app.create_model(&token, other, "c.joblib", bytes.clone())
        .await
        .data();
    assert_eq!(app.count_rows("model_versions").await, 3);
    let files = app.blob_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(sha256_hex(&bytes)));
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_while_streaming() {
    let app = spawn_with(Options {
        max_upload_bytes: 10_000,
        ..Options::default()
    })
    .await;
    let token = app.register("big").await;
    let answer = app
        .create_model(&token, seed_input(), "m.joblib", random_forest())
        .await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.code(), "PAYLOAD_TOO_LARGE");
    assert_eq!(app.count_rows("models").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
}

#[tokio::test]
async fn read_tokens_and_anonymous_callers_cannot_upload() {
    let app = spawn_app().await;
    let session = app.register("reader").await;
    let created = app
        .gql(
            Some(&session),
            "mutation { createApiToken(input: { name: \"r\", scopes: [READ] }) { token } }",
            json!({}),
        )
        .await;
    let read_only = created.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = app
        .create_model(&read_only, seed_input(), "m.joblib", random_forest())
        .await;
    assert_eq!(answer.code(), "FORBIDDEN");
    let anonymous = app
        .upload(
            None,
            "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id } }",
            json!({ "input": seed_input() }),
            "m.joblib",
            random_forest(),
        )
        .await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    assert!(app.blob_files().is_empty());
}

/// Sends raw bytes on a TCP connection and reads one HTTP response (headers and a
/// Content-Length body).
fn round_trip(stream: &mut std::net::TcpStream, request: &[u8]) -> (u16, String) {
    stream.write_all(request).unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let status = text[9..12].parse().unwrap();
                return (status, text[end + 4..].to_owned());
            }
        }
    }
}

/// A chunked multipart upload the way streaming clients send it (Apollo-style map keys, no
/// content type on `operations` and `map`, one file part for two variables): creates two
/// models, `{name}-a` and `{name}-b`, from the same file.
fn chunked_upload(addr: std::net::SocketAddr, token: &str, name: &str, file: &[u8]) -> Vec<u8> {
    let boundary = "----modelhub-test-boundary";
    let operations = json!({
        "operationName": "Create",
        "query": "mutation Create($a: CreateModelInput!, $b: CreateModelInput!, $file: Upload!, $same: Upload!) { a: createModel(input: $a, file: $file) { __typename id name } b: createModel(input: $b, file: $same) { __typename id name } }",
        "variables": {
            "a": { "name": format!("{name}-a"), "framework": "scikit-learn", "version": "v1.0.0" },
            "b": { "name": format!("{name}-b"), "framework": "scikit-learn", "version": "v1.0.0" },
            "file": null,
            "same": null
        }
    });
    let map = json!({ "1": ["variables.file", "variables.same"] });
    let mut body = Vec::new();
    write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n").unwrap();
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{map}\r\n"
    )
    .unwrap();
    write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"1\"; filename=\"model.joblib\"\r\nContent-Type: application/octet-stream\r\n\r\n").unwrap();
    body.extend_from_slice(file);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let mut request = Vec::new();
    write!(
        request,
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    )
    .unwrap();
    for piece in body.chunks(7_000) {
        write!(request, "{:x}\r\n", piece.len()).unwrap();
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

#[tokio::test]
async fn two_chunked_uploads_share_one_keep_alive_connection() {
    let app = spawn_app().await;
    let token = app.register("stream").await;
    let addr = app.addr;
    let file = random_forest();
    let answers = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let first = round_trip(&mut stream, &chunked_upload(addr, &token, "first", &file));
        let second = round_trip(&mut stream, &chunked_upload(addr, &token, "second", &file));
        [first, second]
    })
    .await
    .unwrap();
    for ((status, body), name) in answers.iter().zip(["first", "second"]) {
        assert_eq!(*status, 200, "{body}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["data"]["a"]["name"], format!("{name}-a"), "{body}");
        assert_eq!(body["data"]["b"]["name"], format!("{name}-b"), "{body}");
        assert_eq!(body["data"]["a"]["__typename"], "Model");
    }
    assert_eq!(app.count_rows("model_versions").await, 4);
    assert_eq!(app.blob_files().len(), 1, "one file, stored once");
}

/// The files in the staging area with their sizes (committed blobs are not there).
fn staged_files(app: &crate::helpers::TestApp) -> Vec<(std::path::PathBuf, u64)> {
    crate::helpers::files_under(&app.blob_dir.join("staging"))
        .into_iter()
        .filter_map(|path| Some((path.clone(), std::fs::metadata(&path).ok()?.len())))
        .collect()
}

#[tokio::test]
async fn an_upload_cut_off_half_way_leaves_no_row_and_no_file() {
    use tokio::io::AsyncWriteExt;
    const MIB: usize = 1024 * 1024;
    let app = spawn_app().await;
    let token = app.register("abort").await;
    let file = vec![0x80u8; 32 * MIB];
    let request = chunked_upload(app.addr, &token, "cut", &file);
    // Headers, operations, map and the first 24 MiB of the file part: the request is well
    // under way, and stops there with the connection left open.
    let file_starts = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|head_end| {
            head_end
                + request[head_end..]
                    .windows(4)
                    .position(|w| w == [0x80; 4])
                    .unwrap()
        })
        .unwrap();
    let cut = file_starts + 24 * MIB;
    assert!(cut < request.len() - 2 * MIB);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(&request[..cut]).await.unwrap();
    stream.flush().await.unwrap();
    // Wait (bounded) until the server has demonstrably received and staged a good part of it.
    let mut staged = Vec::new();
    for _ in 0..2_000 {
        staged = staged_files(&app);
        if staged.iter().any(|(_, size)| *size >= 16 * MIB as u64) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (staging_file, size) = staged
        .iter()
        .find(|(_, size)| *size >= 16 * MIB as u64)
        .cloned()
        .unwrap_or_else(|| panic!("the upload was never staged: {staged:?}"));
    assert!(size <= 24 * MIB as u64, "{size}");
    let head = {
        let mut head = vec![0u8; 4096];
        std::fs::File::open(&staging_file)
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        head
    };
    assert!(head.iter().all(|b| *b == 0x80), "the staged bytes are ours");
    assert_eq!(app.count_rows("model_versions").await, 0);
    // The client goes away.
    drop(stream);
    // The server notices the disconnect asynchronously and removes what it staged.
    app.eventually("the staged upload is removed", async || {
        app.blob_files().is_empty()
    })
    .await;
    assert!(!staging_file.exists());
    // It still serves, and nothing was recorded.
    app.assert_serving().await;
    assert_eq!(app.count_rows("models").await, 0);
    assert_eq!(app.count_rows("model_versions").await, 0);
    assert_eq!(app.count_rows("blob_locks").await, 0);
}

#[tokio::test]
async fn malformed_multipart_requests_are_bad_input() {
    let app = spawn_app().await;
    let token = app.register("malformed").await;
    let ops = json!({ "query": "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id } }", "variables": { "input": seed_input(), "file": null } }).to_string();
    let file = || reqwest::multipart::Part::bytes(random_forest()).file_name("m.joblib");
    let forms: Vec<(&str, reqwest::multipart::Form)> = vec![
        (
            "missing map",
            reqwest::multipart::Form::new()
                .text("operations", ops.clone())
                .part("0", file()),
        ),
        (
            "map names a missing part",
            reqwest::multipart::Form::new()
                .text("operations", ops.clone())
                .text(
                    "map",
                    json!({ "0": ["variables.file"], "1": ["variables.other"] }).to_string(),
                )
                .part("0", file()),
        ),
        (
            "file not in map",
            reqwest::multipart::Form::new()
                .text("operations", ops.clone())
                .text("map", json!({ "0": ["variables.file"] }).to_string())
                .part("0", file())
                .part("9", file()),
        ),
        (
            "map path outside variables",
            reqwest::multipart::Form::new()
                .text("operations", ops.clone())
                .text("map", json!({ "0": ["query"] }).to_string())
                .part("0", file()),
        ),
        (
            "operations not JSON",
            reqwest::multipart::Form::new()
                .text("operations", "{ nope")
                .text("map", json!({ "0": ["variables.file"] }).to_string())
                .part("0", file()),
        ),
    ];
    for (case, form) in forms {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{case}: {body}"
        );
    }
    assert_eq!(app.count_rows("models").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
}

#[tokio::test]
async fn a_request_of_several_files_cut_off_leaves_none_of_them() {
    use std::io::Write as _;
    use tokio::io::AsyncWriteExt;
    const MIB: usize = 1024 * 1024;
    let app = spawn_app().await;
    let token = app.register("cut-many").await;
    let boundary = "----modelhub-test-boundary";
    let operations = json!({
        "query": "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { id } }",
        "variables": {
            "input": { "name": "cut", "framework": "x", "version": "1.0.0" },
            "files": [{ "path": "a.bin", "file": null }, { "path": "b.bin", "file": null }]
        }
    });
    let map = json!({ "0": ["variables.files.0.file"], "1": ["variables.files.1.file"] });
    let mut body = Vec::new();
    write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{map}\r\n").unwrap();
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"a.bin\"\r\n\r\n"
    )
    .unwrap();
    body.extend(std::iter::repeat_n(0u8, 4 * MIB));
    write!(
        body,
        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"1\"; filename=\"b.bin\"\r\n\r\n"
    )
    .unwrap();
    let second_starts = body.len();
    body.extend(std::iter::repeat_n(1u8, 32 * MIB));
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let mut request = Vec::new();
    write!(request, "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n", app.addr, body.len()).unwrap();
    request.extend_from_slice(&body[..second_starts + 16 * MIB]);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    stream.flush().await.unwrap();
    // Both files staged: the first whole, the second under way.
    app.eventually("both files are staged", async || {
        let sizes: Vec<u64> = staged_files(&app).iter().map(|(_, size)| *size).collect();
        sizes.contains(&(4 * MIB as u64)) && sizes.iter().any(|s| *s >= 8 * MIB as u64)
    })
    .await;
    drop(stream);
    app.eventually("both staged files are removed", async || {
        app.blob_files().is_empty()
    })
    .await;
    app.assert_serving().await;
    assert_eq!(app.count_rows("model_versions").await, 0);
    assert_eq!(app.count_rows("blob_locks").await, 0);
}
