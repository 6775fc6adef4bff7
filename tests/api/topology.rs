//! The production topology, whole: two `modelhub` processes on one PostgreSQL database, one S3
//! bucket and one Redis, behind nginx balancing round-robin. Uploads through the balancer
//! read back on each replica; a change on one is seen on the other at once; concurrent
//! versions, rate limits and download counts agree; a resumable upload begun on one is finished
//! on the other; a replica killed mid-upload leaves the other serving and the balancer retrying
//! reads there.
//!
//! Runs in the PostgreSQL pass of `.ci/run` (which starts the S3 test server and Redis and
//! installs nginx); needs MODELHUB_TEST_DATABASE_URL, MODELHUB_TEST_S3_BUCKET (with the `AWS_*`
//! variables), MODELHUB_TEST_REDIS_URL and MODELHUB_TEST_NGINX.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    crash::{RawUpload, Server, upload_to, wait_until},
    helpers::{
        fresh_database, safetensors, service_setting, sha256_hex, test_redis_url, test_s3_bucket,
    },
};

/// A free loopback port (bound, then released for the process about to take it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in front of `replicas`, round-robin, retrying a request on the next replica when one
/// cannot be reached.
struct Balancer {
    child: Child,
    base: String,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Balancer {
    fn start(nginx: &str, dir: &Path, replicas: &[&Server]) -> Self {
        let port = free_port();
        let upstreams: String = replicas
            .iter()
            .map(|r| {
                format!(
                    "server {} max_fails=1 fail_timeout=2s;",
                    r.base.trim_start_matches("http://")
                )
            })
            .collect();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\ndaemon off;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
                 upstream hub {{ {upstreams} }}\n\
                 server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 0;\n\
                 location / {{\n      proxy_pass http://hub;\n      proxy_http_version 1.1;\n\
                 proxy_request_buffering off;\n      proxy_buffering off;\n\
                 proxy_set_header X-Forwarded-For $remote_addr;\n\
                 proxy_next_upstream error timeout;\n    }}\n  }}\n}}\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_until("nginx listens", || {
            reqwest::blocking::get(format!("{base}/healthz")).is_ok_and(|r| r.status() == 200)
        });
        Self { child, base }
    }
}

/// A GraphQL request to `base`: its answer, errors included.
fn gql(base: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = reqwest::blocking::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().unwrap().json().unwrap()
}

fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("OK")
}

fn download(base: &str, token: &str, version_id: &str) -> (u16, Vec<u8>) {
    let response = reqwest::blocking::Client::new()
        .get(format!("{base}/files/{version_id}"))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().unwrap().to_vec())
}

#[test]
fn two_replicas_behind_a_balancer_agree() {
    let test = "two_replicas_behind_a_balancer_agree";
    // The topology is PostgreSQL's: the SQLite pass of the suite leaves it to the other pass.
    if std::env::var("MODELHUB_TEST_DATABASE_URL").is_err() {
        return;
    }
    let (Some(bucket), Some(redis), Some(nginx)) = (
        test_s3_bucket(test),
        test_redis_url(test),
        service_setting("MODELHUB_TEST_NGINX", test),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (database_url, _postgres) = runtime.block_on(fresh_database(dir.path()));
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let replica = |name: &str| {
        let data = dir.path().join(name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_modelhub"));
        command
            .env("MODELHUB_DATA_DIR", &data)
            .env("MODELHUB_DATABASE_URL", &database_url)
            .env(
                "MODELHUB_STORAGE_URL",
                format!("s3://{bucket}/topology-{unique}"),
            )
            .env("MODELHUB_REDIS_URL", &redis)
            .env("MODELHUB_REDIS_PREFIX", format!("topology-{unique}"))
            .env("MODELHUB_JWT_SECRET", format!("topology-secret-{unique}"))
            .env("MODELHUB_TRUSTED_PROXIES", "127.0.0.1")
            // Caches that would keep stale answers for a minute without the announcements.
            .env("MODELHUB_RESPONSE_CACHE_SECS", "60")
            .env("MODELHUB_LIMIT_LOGIN", "5/600")
            .env("MODELHUB_BIND", "127.0.0.1:0")
            .env("MODELHUB_LOG", "info")
            .env("MODELHUB_LOG_FORMAT", "json");
        command
    };
    let a = Server::spawn(replica("a"));
    let b = Server::spawn(replica("b"));
    let balancer = Balancer::start(&nginx, dir.path(), &[&a, &b]);
    let lb = balancer.base.as_str();

    // Accounts and an upload through the balancer.
    let register = |name: &str| {
        let answer = gql(
            lb,
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }",
            json!({ "i": { "username": name, "email": format!("{name}@example.com"), "password": "correct horse battery" } }),
        );
        (
            answer["data"]["register"]["token"]
                .as_str()
                .unwrap()
                .to_owned(),
            answer["data"]["register"]["user"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    let (owner, _) = register("owner");
    let (reader, reader_id) = register("reader");
    let admin_created = replica("admin")
        .args([
            "create-admin",
            "--username",
            "boss",
            "--email",
            "boss@example.com",
        ])
        .env("MODELHUB_ADMIN_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    assert!(admin_created.status.success(), "{admin_created:?}");
    let admin = gql(
        lb,
        None,
        "mutation { login(input: { username: \"boss\", password: \"correct horse battery\" }) { token } }",
        json!({}),
    )["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let weights = safetensors(3 * 1024 * 1024);
    let created = upload_to(
        lb,
        &owner,
        json!({
            "query": "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id currentVersion { id sha256 } } }",
            "variables": { "input": { "name": "shared", "version": "1.0.0", "framework": "PYTORCH" }, "file": null },
        }),
        weights.clone(),
    );
    let model_id = created["createModel"]["id"].as_str().unwrap().to_owned();
    let version_id = created["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        created["createModel"]["currentVersion"]["sha256"],
        sha256_hex(&weights)
    );
    // Read back on each replica directly.
    for replica in [&a, &b] {
        let (status, bytes) = download(&replica.base, &owner, &version_id);
        assert_eq!(status, 200);
        assert!(bytes == weights, "the bytes differ on {}", replica.base);
    }

    // Approved on A, the model is public on B at once (B had it cached as unseen).
    let public = "query($id: ID!) { model(id: $id) { id } }";
    assert!(
        gql(&b.base, Some(&reader), public, json!({ "id": model_id }))["data"]["model"].is_null()
    );
    gql(
        &a.base,
        Some(&owner),
        "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
        json!({ "id": model_id }),
    );
    let approved = gql(
        &a.base,
        Some(&admin),
        "mutation($id: ID!) { approveModel(modelId: $id) { id } }",
        json!({ "id": model_id }),
    );
    assert_eq!(code(&approved), "OK", "{approved}");
    wait_until("B shows the approved model", || {
        !gql(&b.base, Some(&reader), public, json!({ "id": model_id }))["data"]["model"].is_null()
    });

    // A disabled account is refused by the other replica at once.
    let me = "{ me { id } }";
    assert_eq!(code(&gql(&b.base, Some(&reader), me, json!({}))), "OK");
    let disabled = gql(
        &a.base,
        Some(&admin),
        "mutation($id: ID!) { disableUser(userId: $id) { id } }",
        json!({ "id": reader_id }),
    );
    assert_eq!(code(&disabled), "OK", "{disabled}");
    let started = Instant::now();
    while code(&gql(&b.base, Some(&reader), me, json!({}))) != "UNAUTHENTICATED" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "B still admits the disabled account"
        );
    }
    let refused_after = started.elapsed();
    println!("a disabled account was refused by the other replica after {refused_after:?}");
    assert!(
        refused_after < Duration::from_millis(100),
        "{refused_after:?}"
    );

    // The same version sent to both replicas at once: one wins, the other is told it exists.
    let sends: Vec<_> = [&a, &b]
        .into_iter()
        .map(|replica| {
            let base = replica.base.clone();
            let (owner, model_id) = (owner.clone(), model_id.clone());
            std::thread::spawn(move || {
                RawUpload::start(&base, &owner, &model_id, "2.0.0", 8 << 20, 0).finish()
            })
        })
        .collect();
    let mut outcomes: Vec<String> = sends
        .into_iter()
        .map(|send| {
            let (_, body) = send.join().unwrap();
            code(&body).to_owned()
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["CONFLICT", "OK"]);

    // Login attempts share one budget, whichever replica they reach: five from this address
    // (the administrator's and four here), then no more.
    for attempt in 0..5 {
        let replica = if attempt % 2 == 0 { &a } else { &b };
        let answer = gql(
            &replica.base,
            None,
            "mutation { login(input: { username: \"owner\", password: \"wrong\" }) { token } }",
            json!({}),
        );
        let expected = if attempt < 4 {
            "UNAUTHENTICATED"
        } else {
            "RATE_LIMITED"
        };
        assert_eq!(code(&answer), expected, "attempt {attempt}: {answer}");
    }

    // Downloads through each replica add up (once per viewer and day).
    assert_eq!(download(&a.base, &admin, &version_id).0, 200);
    let count = || {
        // With `me`, not a catalog read: answered afresh, not from the response cache (counts
        // do not make cached answers stale).
        gql(
            lb,
            Some(&owner),
            "query($id: ID!) { me { id } modelVersion(id: $id) { downloads } }",
            json!({ "id": version_id }),
        )["data"]["modelVersion"]["downloads"]
            .as_i64()
            .unwrap()
    };
    // The owner's two downloads at the start, on A and on B, count once; the admin's once.
    wait_until("both replicas wrote their counts", || count() == 2);

    // A resumable upload begun on A and finished on B becomes a version through the balancer.
    let tus = |method: reqwest::Method, url: &str| {
        reqwest::blocking::Client::new()
            .request(method, url)
            .bearer_auth(&owner)
            .header("tus-resumable", "1.0.0")
    };
    let sent = safetensors(2 * 1024 * 1024);
    let half = sent.len() / 2;
    let created = tus(reqwest::Method::POST, &format!("{}/uploads", a.base))
        .header("upload-length", sent.len().to_string())
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let upload_id = created.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let send_part = |base: &str, from: usize, to: usize| {
        tus(
            reqwest::Method::PATCH,
            &format!("{base}/uploads/{upload_id}"),
        )
        .header("upload-offset", from.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(sent[from..to].to_vec())
        .send()
        .unwrap()
    };
    assert_eq!(send_part(&a.base, 0, half).status(), 204);
    let offset = tus(
        reqwest::Method::HEAD,
        &format!("{}/uploads/{upload_id}", b.base),
    )
    .send()
    .unwrap();
    assert_eq!(offset.headers()["upload-offset"], half.to_string().as_str());
    assert_eq!(send_part(&b.base, half, sent.len()).status(), 204);
    let taken = gql(
        lb,
        Some(&owner),
        "mutation($id: ID!, $files: [FileUpload!]) { createModelVersion(modelId: $id, input: { version: \"1.1.0\" }, files: $files) { id sha256 } }",
        json!({ "id": model_id, "files": [{ "path": "model.safetensors", "uploadId": upload_id }] }),
    );
    assert_eq!(code(&taken), "OK", "{taken}");
    assert_eq!(
        taken["data"]["createModelVersion"]["sha256"],
        sha256_hex(&sent)
    );
    let resumed_id = taken["data"]["createModelVersion"]["id"].as_str().unwrap();
    for replica in [&a, &b] {
        let (status, bytes) = download(&replica.base, &owner, resumed_id);
        assert_eq!(status, 200);
        assert!(
            bytes == sent,
            "the resumed upload differs on {}",
            replica.base
        );
    }

    // A killed mid-upload: B keeps serving, and the balancer sends reads there.
    let mut a = a;
    let cut = RawUpload::start(&a.base, &owner, &model_id, "3.0.0", 64 << 20, 16 << 20);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    drop(cut);
    for _ in 0..6 {
        let (status, bytes) = download(lb, &owner, &version_id);
        assert_eq!(status, 200);
        assert!(bytes == weights);
    }
    let versions = gql(
        lb,
        Some(&owner),
        "query($id: ID!) { model(id: $id) { versions { edges { node { version } } } } }",
        json!({ "id": model_id }),
    );
    let versions: Vec<&str> = versions["data"]["model"]["versions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert!(!versions.contains(&"3.0.0"));
    assert!(
        b.errors.lock().unwrap().is_empty(),
        "{:?}",
        b.errors.lock().unwrap()
    );
}
