//! The `modelhub` binary killed (SIGKILL) in the middle of a large upload, then restarted on the
//! same database and blob directory: what was committed is intact, nothing partial is visible,
//! the staging area is clean before the first request, and `modelhub verify` finds no problem.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::{files_under, fresh_database, safetensors, sha256_hex};

/// The server binary, run as an operator would.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// Log lines at level ERROR.
    pub(crate) errors: Arc<Mutex<Vec<String>>>,
    /// Log lines at level WARN, and those about leases, for the failure message of a test
    /// that waited in vain.
    pub(crate) warnings: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn modelhub(dir: &Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelhub"));
    command
        .current_dir(dir)
        .env("MODELHUB_DATA_DIR", dir.join("data"))
        .env("MODELHUB_DATABASE_URL", database_url)
        .env(
            "MODELHUB_STORAGE_URL",
            format!("file://{}", dir.join("data/blobs").display()),
        )
        .env("MODELHUB_BIND", "127.0.0.1:0")
        .env("MODELHUB_LOG", "info")
        .env("MODELHUB_LOG_FORMAT", "json");
    command
}

impl Server {
    /// Starts `modelhub serve` and waits for the line that says it is listening.
    fn start(dir: &Path, database_url: &str) -> Self {
        Self::spawn(modelhub(dir, database_url))
    }

    /// Starts `command serve` and waits for the line that says it is listening.
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let (logged, warned) = (errors.clone(), warnings.clone());
        // Reads the log to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                match entry["level"].as_str() {
                    Some("ERROR") => logged.lock().unwrap().push(line.clone()),
                    Some("WARN") => warned.lock().unwrap().push(line.clone()),
                    _ if line.contains("lease") => warned.lock().unwrap().push(line.clone()),
                    _ => {}
                }
                if entry["fields"]["message"] == "Model Hub is serving" {
                    let _ = tx.send(entry["fields"]["address"].as_str().unwrap().to_owned());
                }
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts");
        Self {
            child,
            base: format!("http://{address}"),
            errors,
            warnings,
        }
    }

    pub(crate) fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = reqwest::blocking::Client::new()
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().unwrap().json().unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    pub(crate) fn upload(&self, token: &str, operations: Value, file: Vec<u8>) -> Value {
        upload_to(&self.base, token, operations, file)
    }
}

/// A one-file upload mutation sent to `base`: its data, after checking there was no error.
pub(crate) fn upload_to(base: &str, token: &str, operations: Value, file: Vec<u8>) -> Value {
    let form = reqwest::blocking::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::blocking::multipart::Part::bytes(file).file_name("w.safetensors"),
        );
    let body: Value = reqwest::blocking::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// The bytes of the files under `dir` (staging locks aside).
fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|meta| meta.len())
        .sum()
}

/// `modelhub verify` on the same data: its report, after checking it exited 0.
fn verify(dir: &Path, database_url: &str) -> String {
    let verify = modelhub(dir, database_url).arg("verify").output().unwrap();
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{report}");
    report
}

pub(crate) const CREATE_VERSION: &str = "mutation($id: ID!, $input: CreateVersionInput!, $file: Upload!) { createModelVersion(modelId: $id, input: $input, file: $file) { id } }";

/// An upload of version `version` sent by hand, `sent` bytes of its file so far.
pub(crate) struct RawUpload {
    stream: std::net::TcpStream,
    remaining: usize,
    tail: String,
}

/// A file of 1 MiB chunks.
const CHUNK: usize = 1024 * 1024;

impl RawUpload {
    /// Sends the head of a `size`-byte upload of version `version` and its first `sent` bytes.
    pub(crate) fn start(
        base: &str,
        token: &str,
        model_id: &str,
        version: &str,
        size: usize,
        sent: usize,
    ) -> Self {
        let operations = json!({ "query": CREATE_VERSION, "variables": { "id": model_id, "input": { "version": version }, "file": null } });
        Self::start_with(base, token, &operations, "variables.file", size, sent)
    }

    /// The same for any upload mutation, its one file mapped to `variable`.
    fn start_with(
        base: &str,
        token: &str,
        operations: &Value,
        variable: &str,
        size: usize,
        sent: usize,
    ) -> Self {
        let boundary = "crash-test-boundary";
        let head = format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"map\"\r\n\r\n{{\"0\":[\"{variable}\"]}}\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"0\"; filename=\"big.bin\"\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let address = base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /graphql HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\ncontent-type: multipart/form-data; boundary={boundary}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
            head.len() + size + tail.len()
        )
        .unwrap();
        let mut upload = Self {
            stream,
            remaining: size,
            tail,
        };
        upload.send(sent);
        upload
    }

    fn send(&mut self, bytes: usize) {
        let chunk = vec![0x5au8; CHUNK];
        for _ in 0..bytes / CHUNK {
            self.stream.write_all(&chunk).unwrap();
        }
        self.remaining -= bytes;
    }

    /// Sends the rest and reads the answer.
    pub(crate) fn finish(mut self) -> (u16, Value) {
        self.send(self.remaining);
        self.stream.write_all(self.tail.as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut self.stream, &mut answer).unwrap();
        let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

/// Waits (bounded) until `check` holds.
pub(crate) fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting until {what}");
}

/// A user with a model whose version 1.0.0 is committed.
struct Seeded {
    token: String,
    model_id: String,
    version_id: String,
    committed: Vec<u8>,
}

fn seed(server: &Server) -> Seeded {
    let token = server.gql(
        None,
        "mutation($i: RegisterInput!) { register(input: $i) { token } }",
        json!({ "i": { "username": "crash", "email": "crash@example.com", "password": "correct horse battery" } }),
    )["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let committed = safetensors(1000);
    let created = server.upload(
        &token,
        json!({
            "query": "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id currentVersion { id } } }",
            "variables": { "input": { "name": "survivor", "version": "1.0.0", "framework": "PYTORCH" }, "file": null },
        }),
        committed.clone(),
    );
    Seeded {
        token,
        model_id: created["createModel"]["id"].as_str().unwrap().to_owned(),
        version_id: created["createModel"]["currentVersion"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        committed,
    }
}

/// The versions of a model, oldest first.
fn versions(server: &Server, token: &str, model_id: &str) -> Vec<String> {
    let mut found: Vec<String> = server.gql(
        Some(token),
        "query($id: ID!) { model(id: $id) { versions { edges { node { version } } } } }",
        json!({ "id": model_id }),
    )["model"]["versions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["version"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    found
}

#[test]
fn a_server_killed_mid_upload_restarts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (database_url, _postgres) = runtime.block_on(fresh_database(dir.path()));
    let staging = dir.path().join("data/blobs/staging");

    let server = Server::start(dir.path(), &database_url);
    let Seeded {
        token,
        model_id,
        version_id,
        committed,
    } = seed(&server);

    // 24 of 64 MiB sent: the staging area holds part of it when the process dies.
    let _upload = RawUpload::start(&server.base, &token, &model_id, "2.0.0", 64 << 20, 24 << 20);
    let staged = || bytes_under(&staging);
    wait_until("the upload reaches the staging area", || {
        staged() >= 5 << 20
    });
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        !files_under(&staging).is_empty(),
        "the crash left a partial upload"
    );
    drop(server);

    let server = Server::start(dir.path(), &database_url);
    assert!(
        files_under(&staging).is_empty(),
        "start-up removed the partial upload: {:?}",
        files_under(&staging)
    );
    let model = server.gql(
        Some(&token),
        "query($id: ID!) { model(id: $id) { currentVersion { id } versions { edges { node { version sha256 } } } } }",
        json!({ "id": model_id }),
    )["model"]
        .clone();
    assert_eq!(model["currentVersion"]["id"], version_id.as_str());
    assert_eq!(
        model["versions"]["edges"],
        json!([{ "node": { "version": "1.0.0", "sha256": sha256_hex(&committed) } }]),
        "only the committed version is visible"
    );
    let downloaded = reqwest::blocking::Client::new()
        .get(format!("{}/files/{version_id}", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(downloaded == committed, "the committed file is intact");
    let blobs = files_under(&dir.path().join("data/blobs/blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");

    let report = verify(dir.path(), &database_url);
    assert!(report.contains("checked 1 blobs: 0 problems"), "{report}");
    assert!(
        server.errors.lock().unwrap().is_empty(),
        "{:?}",
        server.errors
    );
}

#[test]
fn sigterm_lets_in_flight_uploads_finish_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (database_url, _postgres) = runtime.block_on(fresh_database(dir.path()));
    let staging = dir.path().join("data/blobs/staging");
    let mut command = modelhub(dir.path(), &database_url);
    command.env("MODELHUB_SHUTDOWN_GRACE_SECS", "3");
    let mut server = Server::spawn(command);
    let Seeded {
        token, model_id, ..
    } = seed(&server);

    // One upload will finish during the grace period, the other never will.
    let finishing = RawUpload::start(&server.base, &token, &model_id, "2.0.0", 8 << 20, 7 << 20);
    let _stalled = RawUpload::start(&server.base, &token, &model_id, "3.0.0", 8 << 20, 2 << 20);
    wait_until("both uploads reach the staging area", || {
        files_under(&staging).len() >= 2
    });
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let address = server.base.trim_start_matches("http://").to_owned();
    wait_until("the server stops accepting connections", || {
        std::net::TcpStream::connect(&address).is_err()
    });

    let (status, body) = finishing.finish();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["createModelVersion"]["id"].is_string(),
        "{body}"
    );
    wait_until("the process exits after the grace period", || {
        server.child.try_wait().unwrap().is_some()
    });
    assert!(server.child.wait().unwrap().success());
    assert!(
        files_under(&staging).is_empty(),
        "{:?}",
        files_under(&staging)
    );
    assert!(
        server.errors.lock().unwrap().is_empty(),
        "{:?}",
        server.errors
    );
    drop(server);

    let server = Server::start(dir.path(), &database_url);
    assert_eq!(versions(&server, &token, &model_id), ["1.0.0", "2.0.0"]);
    let report = verify(dir.path(), &database_url);
    assert!(report.contains("checked 2 blobs: 0 problems"), "{report}");
}

#[test]
fn new_inspection_rules_take_effect_through_reinspect_and_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (database_url, _postgres) = runtime.block_on(fresh_database(dir.path()));
    let custom = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/numpy_not_real.pkl"),
    )
    .unwrap();
    let allowing = || {
        let mut command = modelhub(dir.path(), &database_url);
        command.env("MODELHUB_PICKLE_ALLOW", "numpy.NotARealClass");
        command
    };
    let status = |server: &Server, token: &str, id: &str| {
        server.gql(
            Some(token),
            "query($id: ID!) { modelVersion(id: $id) { inspection { status } held } }",
            json!({ "id": id }),
        )["modelVersion"]
            .clone()
    };

    let server = Server::spawn(allowing());
    let Seeded { token, .. } = seed(&server);
    let created = server.upload(
        &token,
        json!({
            "query": "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { currentVersion { id } } }",
            "variables": { "input": { "name": "custom", "version": "1.0.0", "framework": "numpy", "format": "PICKLE" }, "file": null },
        }),
        custom,
    );
    let id = created["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        status(&server, &token, &id),
        json!({ "inspection": { "status": "SAFE" }, "held": false })
    );
    drop(server);

    // Without the deployment's extension, `modelhub reinspect` holds it.
    let run = modelhub(dir.path(), &database_url)
        .arg("reinspect")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{printed}");
    assert!(
        printed.contains("inspected 2 versions again: 1 verdicts changed"),
        "{printed}"
    );

    // The server started with the extension again inspects it again by itself.
    // Within a lease's life and a retry: a replica killed holding the re-inspection lease is
    // taken over once it lapses.
    let server = Server::spawn(allowing());
    let cleared = (0..9000).any(|_| {
        let held = status(&server, &token, &id)["held"] == true;
        if held {
            std::thread::sleep(Duration::from_millis(10));
        }
        !held
    });
    assert!(
        cleared,
        "the start-up re-inspection did not clear the version; the server warned: {:?}",
        server.warnings
    );
    assert!(
        server.errors.lock().unwrap().is_empty(),
        "{:?}",
        server.errors
    );
}

#[test]
fn download_counts_noted_before_sigterm_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (database_url, _postgres) = runtime.block_on(fresh_database(dir.path()));
    let mut server = Server::start(dir.path(), &database_url);
    let Seeded {
        token, version_id, ..
    } = seed(&server);
    let downloaded = reqwest::blocking::Client::new()
        .get(format!("{}/files/{version_id}", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(downloaded.status(), 200);
    downloaded.bytes().unwrap();
    // At once, well within the second after which the count would be written anyway.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(server.child.wait().unwrap().success());
    drop(server);

    let server = Server::start(dir.path(), &database_url);
    let counted = server.gql(
        Some(&token),
        "query($id: ID!) { modelVersion(id: $id) { downloads } }",
        json!({ "id": version_id }),
    );
    assert_eq!(counted["modelVersion"]["downloads"], 1);
}

const ADD_DRAFT_FILES: &str = "mutation($id: ID!, $files: [FileUpload!]) { addDraftFiles(draftId: $id, files: $files) { id files { path } } }";

#[test]
fn a_draft_killed_mid_upload_shows_nothing_and_gc_frees_it_once_expired() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (database_url, _postgres) = runtime.block_on(fresh_database(dir.path()));
    let staging = dir.path().join("data/blobs/staging");
    let blobs_dir = dir.path().join("data/blobs/blobs");

    let server = Server::start(dir.path(), &database_url);
    let Seeded {
        token, model_id, ..
    } = seed(&server);
    let draft = server.gql(
        Some(&token),
        "mutation($id: ID!) { createVersionDraft(modelId: $id, input: { version: \"2.0.0\" }) { id } }",
        json!({ "id": model_id }),
    )["createVersionDraft"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // One file is in the draft; a second, 64 MiB, is cut off by the kill.
    let first = RawUpload::start_with(
        &server.base,
        &token,
        &json!({ "query": ADD_DRAFT_FILES, "variables": { "id": draft, "files": [{ "path": "config.json", "file": null }] } }),
        "variables.files.0.file",
        CHUNK,
        0,
    );
    let (status, body) = first.finish();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        files_under(&blobs_dir).len(),
        2,
        "the seed's blob and the draft's"
    );
    let _cut = RawUpload::start_with(
        &server.base,
        &token,
        &json!({ "query": ADD_DRAFT_FILES, "variables": { "id": draft, "files": [{ "path": "weights.bin", "file": null }] } }),
        "variables.files.0.file",
        64 << 20,
        24 << 20,
    );
    wait_until("the upload reaches the staging area", || {
        bytes_under(&staging) >= 5 << 20
    });
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = Server::start(dir.path(), &database_url);
    assert!(
        files_under(&staging).is_empty(),
        "start-up cleared the cut upload"
    );
    assert_eq!(
        versions(&server, &token, &model_id),
        ["1.0.0"],
        "nothing shows"
    );
    let listed = server.gql(
        Some(&token),
        "query($id: ID!) { versionDraft(id: $id) { files { path } } }",
        json!({ "id": draft }),
    );
    assert_eq!(
        listed["versionDraft"]["files"],
        json!([{ "path": "config.json" }]),
        "the draft holds what was added before the kill"
    );
    drop(server);

    // Once the draft's time is up, gc removes it and the bytes only it used.
    runtime.block_on(async {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let db = Database::connect(&database_url).await.unwrap();
        let backend = db.get_database_backend();
        db.execute_raw(Statement::from_string(
            backend,
            "UPDATE version_drafts SET expires_at = created_at",
        ))
        .await
        .unwrap();
        db.close().await.unwrap();
    });
    let gc = modelhub(dir.path(), &database_url)
        .args(["gc", "--grace-minutes", "0"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&gc.stdout);
    assert!(gc.status.success(), "{printed}");
    assert!(printed.contains(", 1 expired drafts,"), "{printed}");
    assert_eq!(
        files_under(&blobs_dir).len(),
        1,
        "only the committed version's blob is left"
    );
    let report = verify(dir.path(), &database_url);
    assert!(report.contains("checked 1 blobs: 0 problems"), "{report}");
}
