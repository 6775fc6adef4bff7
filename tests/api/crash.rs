//! The `modelhub` binary killed (SIGKILL) in the middle of a large upload, then restarted on the
//! same database and blob directory: what was committed is intact, nothing partial is visible,
//! the staging area is clean before the first request, and `modelhub verify` finds no problem.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::{fresh_database, safetensors, sha256_hex};

/// The server binary, run as an operator would.
struct Server {
    child: Child,
    base: String,
    /// Log lines at level ERROR.
    errors: Arc<Mutex<Vec<String>>>,
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
        let mut child = modelhub(dir, database_url)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let logged = errors.clone();
        // Reads the log to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if entry["level"] == "ERROR" {
                    logged.lock().unwrap().push(line.clone());
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
        }
    }

    fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
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

    fn upload(&self, token: &str, operations: Value, file: Vec<u8>) -> Value {
        let form = reqwest::blocking::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part(
                "0",
                reqwest::blocking::multipart::Part::bytes(file).file_name("w.safetensors"),
            );
        let body: Value = reqwest::blocking::Client::new()
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }
}

/// The files under `dir` (recursively), without the staging locks, with their sizes.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_none_or(|e| e != "lock") {
            out.push((path.clone(), entry.metadata().unwrap().len()));
        }
    }
    out
}

const CREATE_VERSION: &str = "mutation($id: ID!, $input: CreateVersionInput!, $file: Upload!) { createModelVersion(modelId: $id, input: $input, file: $file) { id } }";

/// Sends the head of a `size`-byte upload of version 2.0.0 and returns the open connection.
fn start_large_upload(
    base: &str,
    token: &str,
    model_id: &str,
    size: usize,
    sent: usize,
) -> std::net::TcpStream {
    let operations = json!({ "query": CREATE_VERSION, "variables": { "id": model_id, "input": { "version": "2.0.0" }, "file": null } });
    let boundary = "crash-test-boundary";
    let head = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"map\"\r\n\r\n{{\"0\":[\"variables.file\"]}}\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"0\"; filename=\"big.bin\"\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\ncontent-type: multipart/form-data; boundary={boundary}\r\ncontent-length: {}\r\n\r\n{head}",
        head.len() + size + tail.len()
    )
    .unwrap();
    let chunk = vec![0x5au8; 1024 * 1024];
    for _ in 0..sent / chunk.len() {
        stream.write_all(&chunk).unwrap();
    }
    stream
}

#[test]
fn a_server_killed_mid_upload_restarts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (database_url, _postgres) = runtime.block_on(fresh_database(dir.path()));
    let staging = dir.path().join("data/blobs/staging");

    let server = Server::start(dir.path(), &database_url);
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
    let model_id = created["createModel"]["id"].as_str().unwrap().to_owned();
    let version_id = created["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 24 of 64 MiB sent: the staging area holds part of it when the process dies.
    let _connection = start_large_upload(&server.base, &token, &model_id, 64 << 20, 24 << 20);
    let staged = || files(&staging).iter().map(|(_, size)| size).sum::<u64>();
    for _ in 0..3000 {
        if staged() >= 5 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(staged() >= 5 << 20, "the upload reached the staging area");
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        !files(&staging).is_empty(),
        "the crash left a partial upload"
    );
    drop(server);

    let server = Server::start(dir.path(), &database_url);
    assert!(
        files(&staging).is_empty(),
        "start-up removed the partial upload: {:?}",
        files(&staging)
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
    let blobs = files(&dir.path().join("data/blobs/blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");

    let verify = modelhub(dir.path(), &database_url)
        .arg("verify")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("checked 1 blobs: 0 problems"), "{report}");
    assert!(
        server.errors.lock().unwrap().is_empty(),
        "{:?}",
        server.errors
    );
}
