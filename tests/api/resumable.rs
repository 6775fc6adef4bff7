//! Resumable uploads over tus 1.0 at `/uploads/`, on the wire: creation, offsets, a cut
//! connection resumed (on another replica too), checksums, termination, who may touch an
//! upload, and a finished upload taken into a version by `uploadId`; then the real clients,
//! tuspy (tests/tus) and tus-js-client (tests/js), each resuming on one replica what it began on
//! the other.

use std::io::Write;

use base64::Engine;
use serde_json::json;

use crate::helpers::{Options, TestApp, safetensors, sha256_hex, spawn_app, spawn_with};

const CREATE: &str = "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { id currentVersion { id sha256 sizeBytes files { edges { node { path sha256 } } } } } }";

fn tus(app: &TestApp, method: reqwest::Method, url: &str, token: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, url)
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
}

/// Starts an upload of `length` bytes; its URL.
pub(crate) async fn create(app: &TestApp, token: &str, length: usize) -> String {
    let created = tus(
        app,
        reqwest::Method::POST,
        &format!("{}/uploads", app.base),
        token,
    )
    .header("upload-length", length.to_string())
    .header(
        "upload-metadata",
        format!(
            "filename {}",
            base64::engine::general_purpose::STANDARD.encode("w.safetensors")
        ),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("upload-expires"));
    created.headers()["location"].to_str().unwrap().to_owned()
}

/// Sends `bytes` from `offset`.
pub(crate) async fn patch(
    app: &TestApp,
    token: &str,
    url: &str,
    offset: usize,
    bytes: &[u8],
) -> reqwest::Response {
    tus(app, reqwest::Method::PATCH, url, token)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

async fn offset_of(app: &TestApp, token: &str, url: &str) -> reqwest::Response {
    tus(app, reqwest::Method::HEAD, url, token)
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_file_sent_in_pieces_becomes_a_version() {
    let app = spawn_app().await;
    let token = app.register("tus-owner").await;
    let options = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/uploads", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 204);
    assert_eq!(header(&options, "tus-version"), "1.0.0");
    assert_eq!(
        header(&options, "tus-extension"),
        "creation,termination,checksum,expiration"
    );

    let weights = safetensors(300_000);
    let url = create(&app, &token, weights.len()).await;
    let third = weights.len() / 3;
    let first = patch(&app, &token, &url, 0, &weights[..third]).await;
    assert_eq!(first.status(), 204);
    assert_eq!(header(&first, "upload-offset"), third.to_string());
    // A PATCH from the wrong offset is refused, and changes nothing.
    assert_eq!(
        patch(&app, &token, &url, 0, &weights[..10]).await.status(),
        409
    );
    let head = offset_of(&app, &token, &url).await;
    assert_eq!(header(&head, "upload-offset"), third.to_string());
    assert_eq!(header(&head, "upload-length"), weights.len().to_string());
    assert_eq!(header(&head, "cache-control"), "no-store");
    // A wrong checksum drops the bytes (460); the right one keeps them.
    let rest = &weights[third..];
    let digest = |bytes: &[u8]| {
        use sha2::Digest;
        format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
        )
    };
    let wrong = tus(&app, reqwest::Method::PATCH, &url, &token)
        .header("upload-offset", third.to_string())
        .header("content-type", "application/offset+octet-stream")
        .header("upload-checksum", digest(b"something else"))
        .body(rest.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 460);
    assert_eq!(
        header(&offset_of(&app, &token, &url).await, "upload-offset"),
        third.to_string()
    );
    let last = tus(&app, reqwest::Method::PATCH, &url, &token)
        .header("upload-offset", third.to_string())
        .header("content-type", "application/offset+octet-stream")
        .header("upload-checksum", digest(rest))
        .body(rest.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), 204);
    assert_eq!(header(&last, "upload-offset"), weights.len().to_string());
    // Bytes past the announced length are refused.
    assert_eq!(
        patch(&app, &token, &url, weights.len(), b"more")
            .await
            .status(),
        409
    );

    // Someone else can neither see, continue, end nor use it.
    let stranger = app.register("tus-stranger").await;
    assert_eq!(offset_of(&app, &stranger, &url).await.status(), 404);
    assert_eq!(
        patch(&app, &stranger, &url, weights.len(), b"x")
            .await
            .status(),
        404
    );
    let id = url.rsplit('/').next().unwrap().to_owned();
    let input = |name: &str| json!({ "name": name, "framework": "PYTORCH", "version": "1.0.0" });
    let theirs = app
        .gql(
            Some(&stranger),
            CREATE,
            json!({ "input": input("not-theirs"), "files": [{ "path": "w.safetensors", "uploadId": id }] }),
        )
        .await;
    assert_eq!(theirs.code(), "BAD_USER_INPUT");

    // Taken by its id into a version: the bytes, the hash, and the upload is gone after.
    let created = app
        .gql(
            Some(&token),
            CREATE,
            json!({ "input": input("sent-in-pieces"), "files": [{ "path": "w.safetensors", "uploadId": id }] }),
        )
        .await;
    let version = &created.data()["createModel"]["currentVersion"];
    assert_eq!(version["sha256"], sha256_hex(&weights));
    assert_eq!(
        version["files"]["edges"][0]["node"]["path"],
        "w.safetensors"
    );
    assert_eq!(offset_of(&app, &token, &url).await.status(), 404);
    let again = app
        .gql(
            Some(&token),
            CREATE,
            json!({ "input": input("twice"), "files": [{ "path": "w.safetensors", "uploadId": id }] }),
        )
        .await;
    assert_eq!(again.code(), "BAD_USER_INPUT");
    // Nothing of it is left outside the blob.
    assert!(
        crate::helpers::files_under(&app.blob_dir.join("resumable")).is_empty(),
        "{:?}",
        crate::helpers::files_under(&app.blob_dir.join("resumable"))
    );
}

#[tokio::test]
async fn a_cut_connection_resumes_where_the_bytes_stopped_even_on_another_replica() {
    let app = spawn_with(Options::default()).await;
    let replica = app.replica().await;
    let token = app.register("tus-flaky").await;
    let weights = safetensors(2 * 1024 * 1024);
    let url = create(&app, &token, weights.len()).await;
    // Half the body, then the connection drops.
    let sent = 3 * 1024 * 1024;
    {
        let mut stream = std::net::TcpStream::connect(app.addr).unwrap();
        let path = url.trim_start_matches(&app.base);
        write!(
            stream,
            "PATCH {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ntus-resumable: 1.0.0\r\nupload-offset: 0\r\ncontent-type: application/offset+octet-stream\r\ncontent-length: {}\r\n\r\n",
            app.addr,
            weights.len()
        )
        .unwrap();
        stream.write_all(&weights[..sent]).unwrap();
        stream.shutdown(std::net::Shutdown::Both).unwrap();
    }
    // The server keeps what arrived; the client asks the other replica how far it got.
    let mut reached = 0;
    for _ in 0..500 {
        let head = offset_of(&replica, &token, &url.replace(&app.base, &replica.base)).await;
        reached = header(&head, "upload-offset").parse::<usize>().unwrap();
        if reached > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(reached > 0 && reached <= sent, "{reached}");
    let url_b = url.replace(&app.base, &replica.base);
    let rest = patch(&replica, &token, &url_b, reached, &weights[reached..]).await;
    assert_eq!(rest.status(), 204);
    assert_eq!(header(&rest, "upload-offset"), weights.len().to_string());
    let id = url.rsplit('/').next().unwrap();
    let created = replica
        .gql(
            Some(&token),
            CREATE,
            json!({ "input": { "name": "resumed", "framework": "PYTORCH", "version": "1.0.0" }, "files": [{ "path": "w.safetensors", "uploadId": id }] }),
        )
        .await;
    assert_eq!(
        created.data()["createModel"]["currentVersion"]["sha256"],
        sha256_hex(&weights)
    );
    let version = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let download = app
        .client
        .get(format!("{}/files/{version}/w.safetensors", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.bytes().await.unwrap() == weights);
}

#[tokio::test]
async fn requests_are_refused_before_their_bytes_and_termination_removes_them() {
    let app = spawn_app().await;
    let token = app.register("tus-strict").await;
    let base = format!("{}/uploads", app.base);
    // No token, another protocol version, no length, too large.
    let anonymous = app
        .client
        .post(&base)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let old = app
        .client
        .post(&base)
        .bearer_auth(&token)
        .header("tus-resumable", "0.2.2")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 412);
    assert_eq!(header(&old, "tus-version"), "1.0.0");
    let no_length = tus(&app, reqwest::Method::POST, &base, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_length.status(), 400);
    let huge = tus(&app, reqwest::Method::POST, &base, &token)
        .header("upload-length", (1u64 << 40).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);

    let url = create(&app, &token, 100).await;
    assert_eq!(patch(&app, &token, &url, 0, &[7u8; 40]).await.status(), 204);
    let wrong_type = tus(&app, reqwest::Method::PATCH, &url, &token)
        .header("upload-offset", "40")
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    let ended = tus(&app, reqwest::Method::DELETE, &url, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(offset_of(&app, &token, &url).await.status(), 404);
    assert!(crate::helpers::files_under(&app.blob_dir.join("resumable")).is_empty());

    // An unfinished upload cannot be taken.
    let url = create(&app, &token, 100).await;
    let id = url.rsplit('/').next().unwrap();
    let early = app
        .gql(
            Some(&token),
            CREATE,
            json!({ "input": { "name": "early", "framework": "x", "version": "1.0.0" }, "files": [{ "path": "a.bin", "uploadId": id }] }),
        )
        .await;
    assert_eq!(early.code(), "BAD_USER_INPUT");
    assert!(
        early.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("0 of its 100 bytes"),
        "{:?}",
        early.body
    );
}

/// Runs a real tus client's script (`program script`) against two replicas of one hub: it begins
/// an upload on one, resumes it on the other and takes it into a model, printing the version's
/// SHA-256, which must be the file's.
async fn client_resumes_on_the_other_replica(client: &str, program: String, script: &str) {
    let app = spawn_with(Options::default()).await;
    let replica = app.replica().await;
    let token = app.register("tus-client").await;
    let dir = tempfile::tempdir().unwrap();
    let weights = safetensors(1_500_000);
    let file = dir.path().join("w.safetensors");
    std::fs::write(&file, &weights).unwrap();
    let mut command = std::process::Command::new(program);
    command
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .env("MODELHUB_TUS_A", &app.base)
        .env("MODELHUB_TUS_B", &replica.base)
        .env("MODELHUB_TUS_TOKEN", &token)
        .env("MODELHUB_TUS_FILE", &file);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{client} failed:\n{report}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        sha256_hex(&weights),
        "{report}"
    );
}

#[tokio::test]
async fn tuspy_resumes_on_the_other_replica_what_it_began_on_one() {
    let Some(python) = crate::helpers::service_setting(
        "MODELHUB_TEST_TUS_PYTHON",
        "tuspy_resumes_on_the_other_replica_what_it_began_on_one",
    ) else {
        return;
    };
    client_resumes_on_the_other_replica("tuspy", python, "tests/tus/test_tuspy.py").await;
}

#[tokio::test]
async fn tus_js_client_resumes_on_the_other_replica_what_it_began_on_one() {
    let Some(node) = crate::helpers::service_setting(
        "MODELHUB_TEST_NODE",
        "tus_js_client_resumes_on_the_other_replica_what_it_began_on_one",
    ) else {
        return;
    };
    let modules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/node_modules");
    assert!(
        modules.join("tus-js-client").is_dir(),
        "tests/js has no node_modules: run `npm ci --prefix tests/js`"
    );
    client_resumes_on_the_other_replica("tus-js-client", node, "tests/js/tus.mjs").await;
}

#[tokio::test]
async fn each_byte_is_hashed_once_and_a_lost_hash_state_is_rebuilt() {
    use modelhub::entities::resumable_upload;
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let app = spawn_app().await;
    let token = app.register("tus-hash-state").await;
    let weights = safetensors(400_000);
    let url = create(&app, &token, weights.len()).await;
    let id: uuid::Uuid = url.rsplit('/').next().unwrap().parse().unwrap();
    let row = || async {
        resumable_upload::Entity::find_by_id(id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
    };
    let quarter = weights.len() / 4;
    let mut first_state = String::new();
    for i in 0..3 {
        let (from, to) = (i * quarter, (i + 1) * quarter);
        assert_eq!(
            patch(&app, &token, &url, from, &weights[from..to])
                .await
                .status(),
            204
        );
        // The upload keeps its file's hash after these bytes (and how many they are), for
        // the next request to go on from.
        let kept = row().await;
        let state = kept.hash_state.clone().expect("the hash's state is kept");
        let (offset, text) = state.split_once(':').unwrap();
        assert_eq!(offset, to.to_string());
        let mut hash = modelhub::storage::PartialSha256::from_text(text).unwrap();
        hash.update(&weights[to..]);
        assert_eq!(hash.finish(), sha256_hex(&weights));
        if i == 0 {
            first_state = state;
        }
        // A state that is missing (an upload begun before states were kept), unreadable, or
        // of fewer bytes than the upload has (a replica that kept none appended since) is
        // rebuilt from the bytes.
        let lost = [
            None,
            Some("not a hash state".to_owned()),
            Some(first_state.clone()),
        ];
        let mut active: resumable_upload::ActiveModel = kept.into();
        active.hash_state = Set(lost[i].clone());
        active.update(&app.state.db).await.unwrap();
    }
    let rest = 3 * quarter;
    assert_eq!(
        patch(&app, &token, &url, rest, &weights[rest..])
            .await
            .status(),
        204
    );
    let finished = row().await;
    assert_eq!(
        finished.sha256.as_deref(),
        Some(sha256_hex(&weights).as_str())
    );
    assert_eq!(finished.hash_state, None);
    let created = app
        .gql(
            Some(&token),
            CREATE,
            json!({ "input": { "name": "hashed-once", "framework": "PYTORCH", "version": "1.0.0" },
                    "files": [{ "path": "w.safetensors", "uploadId": id.to_string() }] }),
        )
        .await;
    assert_eq!(
        created.data()["createModel"]["currentVersion"]["sha256"],
        sha256_hex(&weights)
    );
}
