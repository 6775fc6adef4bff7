//! The test harness: `spawn_app`, GraphQL and multipart helpers, and fixtures.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use modelhub::{
    App,
    config::{Config, S3Options, StorageUrl, UnsafeUploads},
    services::rate_limit::{RateLimiter, Rule, Rules},
    state::AppState,
    storage::BlobStore,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A running server with its own database and blob directory.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub blob_dir: PathBuf,
    statements: Arc<AtomicUsize>,
    /// The downloads counted when [`TestApp::flush_downloads`] last looked.
    counted: Arc<std::sync::atomic::AtomicI64>,
    _postgres: Option<PostgresDatabase>,
    _dir: TempDir,
}

/// A throwaway PostgreSQL database, dropped with the test.
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime we may block, so use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(db) = Database::connect(&admin_url).await {
                    let _ = db
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Says once, on the terminal, whether the PostgreSQL run happens.
fn announce_backend() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        use std::io::Write;
        let url = std::env::var("MODELHUB_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty());
        let line = match &url {
            Some(_) => "integration tests: running against PostgreSQL (MODELHUB_TEST_DATABASE_URL)\n",
            None => "integration tests: running against SQLite; the PostgreSQL run was skipped (set MODELHUB_TEST_DATABASE_URL to run it)\n",
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
        url
    })
    .clone()
}

/// Options for `spawn_with`.
#[derive(Clone)]
pub struct Options {
    pub max_upload_bytes: u64,
    pub unsafe_uploads: UnsafeUploads,
    /// Generous by default, so that tests making many accounts are not limited.
    pub rate_limits: Rules,
    /// Keep rate-limit buckets in Redis under this prefix (needs MODELHUB_TEST_REDIS_URL).
    pub redis_prefix: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long the response and credential caches keep answers.
    pub response_cache_secs: u64,
    /// Store blobs in the S3 bucket `MODELHUB_TEST_S3_BUCKET` (under a prefix of the test's
    /// own) instead of a local directory.
    pub s3: bool,
    /// `MODELHUB_S3_MAX_COPY_BYTES` and `MODELHUB_S3_PRESIGNED_DOWNLOADS`.
    pub s3_options: S3Options,
    /// `MODELHUB_PICKLE_ALLOW`.
    pub pickle_allow: Vec<String>,
    /// `MODELHUB_INSPECTION_TIMEOUT_SECS`.
    pub inspection_secs: u64,
    /// `MODELHUB_MAX_FILES_PER_VERSION`.
    pub max_files_per_version: usize,
    /// `MODELHUB_MAX_VERSION_BYTES`.
    pub max_version_bytes: u64,
    /// `MODELHUB_WEBHOOK_RETRY_BASE_MS`.
    pub webhook_retry_base: Duration,
    /// `MODELHUB_WEBHOOK_RETRY_WINDOW_SECS`.
    pub webhook_retry_window: Duration,
    /// How ONNX models are run.
    pub inference: modelhub::config::InferenceOptions,
}

impl Default for Options {
    fn default() -> Self {
        let lots = Rule {
            burst: 10_000,
            period: Duration::from_secs(1),
        };
        Self {
            max_upload_bytes: 64 * 1024 * 1024,
            unsafe_uploads: UnsafeUploads::Quarantine,
            rate_limits: Rules {
                login: lots,
                register: lots,
                upload: lots,
                create_token: lots,
                predict: lots,
            },
            redis_prefix: None,
            trusted_proxies: Vec::new(),
            s3: false,
            s3_options: S3Options {
                max_single_copy: 5 * 1024 * 1024 * 1024,
                presigned_downloads: false,
            },
            response_cache_secs: 2,
            pickle_allow: Vec::new(),
            inspection_secs: 30,
            max_files_per_version: 10_000,
            max_version_bytes: 256 * 1024 * 1024,
            webhook_retry_base: Duration::from_millis(50),
            webhook_retry_window: Duration::from_secs(86_400),
            inference: modelhub::config::InferenceOptions {
                memory_bytes: 64 * 1024 * 1024,
                concurrency: 2,
                timeout: Duration::from_secs(30),
                max_batch: 1024,
                max_values: 1 << 20,
            },
        }
    }
}

/// A test service's setting, if configured. Where `MODELHUB_TEST_REQUIRE_SERVICES=1` (as in
/// CI), a missing one fails the test instead of skipping it.
pub fn service_setting(var: &str, test: &str) -> Option<String> {
    let value = std::env::var(var).ok().filter(|v| !v.is_empty());
    if value.is_none() {
        assert!(
            std::env::var("MODELHUB_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{test}: {var} is unset, and MODELHUB_TEST_REQUIRE_SERVICES=1 says it must not be skipped"
        );
        use std::io::Write;
        let _ =
            std::io::stderr().write_all(format!("{test}: skipped, {var} is unset\n").as_bytes());
    }
    value
}

/// The Redis server for shared-limit tests, if one is configured.
pub fn test_redis_url(test: &str) -> Option<String> {
    service_setting("MODELHUB_TEST_REDIS_URL", test)
}

/// The Chromium binary for browser tests: `MODELHUB_TEST_CHROMIUM`, else `/usr/bin/chromium`
/// if it is installed (`.ci/run` installs it).
pub fn test_chromium(test: &str) -> Option<String> {
    let installed = Path::new("/usr/bin/chromium")
        .exists()
        .then(|| "/usr/bin/chromium".to_owned());
    match std::env::var("MODELHUB_TEST_CHROMIUM").ok().or(installed) {
        Some(path) => Some(path),
        None => service_setting("MODELHUB_TEST_CHROMIUM", test),
    }
}

/// The Python with the pinned `huggingface_hub` for the protocol tests (`.ci/run` makes a
/// virtualenv for it), if one is configured.
pub fn test_hf_python(test: &str) -> Option<String> {
    service_setting("MODELHUB_TEST_HF_PYTHON", test)
}

/// The S3 bucket for object-store tests, if one is configured (with the usual `AWS_*`
/// variables for its endpoint and keys).
pub fn test_s3_bucket(test: &str) -> Option<String> {
    service_setting("MODELHUB_TEST_S3_BUCKET", test)
}

/// Every file under `dir`, sorted, without the staging area's lock files.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_none_or(|e| e != "lock") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}

/// Spawns the app with its response and credential caches keeping answers `secs` seconds (0:
/// off).
pub async fn spawn_with_cache(secs: u64) -> TestApp {
    spawn_with(Options {
        response_cache_secs: secs,
        ..Options::default()
    })
    .await
}

/// Spawns the app with default options.
pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// A fresh database: an SQLite file in `dir`, or a new PostgreSQL database in the test run.
pub async fn fresh_database(dir: &Path) -> (String, Option<PostgresDatabase>) {
    match announce_backend() {
        None => (
            format!("sqlite://{}/modelhub.db?mode=rwc", dir.display()),
            None,
        ),
        Some(admin_url) => {
            let name = format!("modelhub_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to MODELHUB_TEST_DATABASE_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create a test database");
            admin.close().await.ok();
            let mut url = url::Url::parse(&admin_url).expect("MODELHUB_TEST_DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            (url.to_string(), Some(PostgresDatabase { admin_url, name }))
        }
    }
}

/// Spawns the app on 127.0.0.1:0 with a fresh database and blob directory.
pub async fn spawn_with(options: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, postgres) = fresh_database(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let blob_dir = dir.path().join("blobs");
    let config = Config {
        bind: addr,
        database_url: database_url.into(),
        storage: match (
            options.s3,
            options.s3.then(|| test_s3_bucket("spawn_with")).flatten(),
        ) {
            (true, Some(bucket)) => StorageUrl::S3 {
                bucket,
                prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
            },
            _ => StorageUrl::Local(blob_dir.clone()),
        },
        s3: options.s3_options.clone(),
        jwt_secret: format!("test-secret-{}", uuid::Uuid::new_v4()).into(),
        max_upload_bytes: options.max_upload_bytes,
        max_files_per_version: options.max_files_per_version,
        max_version_bytes: options.max_version_bytes,
        draft_ttl: Duration::from_secs(3600),
        // The deployment's default.
        protected_aliases: vec![
            modelhub::domain::alias::AliasName::parse("alias", "production").unwrap(),
        ],
        public_url: url::Url::parse(&format!("http://{addr}")).unwrap(),
        data_dir: dir.path().to_path_buf(),
        cors_origins: vec!["*".into()],
        access_token_ttl: Duration::from_secs(3600),
        download_url_ttl: Duration::from_secs(600),
        max_request_bytes: 2 * 1024 * 1024,
        unsafe_uploads: options.unsafe_uploads,
        inspection_timeout: Duration::from_secs(options.inspection_secs),
        inspection_threads: 2,
        inspection_memory: modelhub_inspect::DEFAULT_MEMORY,
        pickle_rules: modelhub_inspect::Rules::new(&options.pickle_allow).unwrap(),
        redis_url: options
            .redis_prefix
            .as_ref()
            .and_then(|_| test_redis_url("spawn_with"))
            .map(Into::into),
        redis_prefix: options
            .redis_prefix
            .clone()
            .unwrap_or_else(|| "modelhub".into()),
        rate_limits: options.rate_limits.clone(),
        trusted_proxies: options.trusted_proxies.clone(),
        response_cache_ttl: Duration::from_secs(options.response_cache_secs),
        shutdown_grace: Duration::from_secs(30),
        webhooks: modelhub::config::WebhookOptions {
            timeout: Duration::from_secs(5),
            retry_base: options.webhook_retry_base,
            retry_window: options.webhook_retry_window,
            event_retention: Duration::from_secs(30 * 86_400),
            // The receivers tests run are on loopback.
            private_targets: true,
        },
        inference: options.inference.clone(),
    };
    let mut db: DatabaseConnection = modelhub::db::connect(&config.database_url).await.unwrap();
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    // The requests' statements: the background readers of the event feed and the webhook
    // queue, which poll on every change, are not counted.
    db.set_metric_callback(move |info| {
        let sql = info.statement.sql.as_str();
        let background = (sql.starts_with("SELECT") || sql.starts_with("UPDATE"))
            && (sql.contains("FROM \"events\"")
                || sql.contains("FROM \"webhook_deliveries\"")
                || sql.starts_with("UPDATE \"webhook_deliveries\""));
        if !background {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    modelhub::db::migrate(&db).await.unwrap();
    let blobs = BlobStore::open(&config.storage, &config.s3).unwrap();
    let limiter = match &config.redis_url {
        Some(url) => RateLimiter::redis(
            options.rate_limits.clone(),
            url.expose_secret(),
            &config.redis_prefix,
        )
        .await
        .expect("connect to MODELHUB_TEST_REDIS_URL"),
        None => RateLimiter::in_memory(options.rate_limits.clone()),
    };
    let state = AppState::new(config, db, blobs, limiter).unwrap();
    let app: App = modelhub::app_from_state(state.clone());
    tokio::spawn(async move {
        modelhub::serve(listener, app, std::future::pending())
            .await
            .unwrap();
    });
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        state,
        blob_dir,
        statements,
        counted: Arc::default(),
        _postgres: postgres,
        _dir: dir,
    }
}

impl TestApp {
    /// A second server on the same database, blob store, signing key and Redis prefix: a
    /// replica of this one, behind its own port.
    pub async fn replica(&self) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = self.state.config.clone();
        config.bind = addr;
        config.public_url = url::Url::parse(&format!("http://{addr}")).unwrap();
        config.data_dir = dir.path().to_path_buf();
        let state = modelhub::open_state(config).await.unwrap();
        let app = modelhub::app_from_state(state.clone());
        tokio::spawn(async move {
            modelhub::serve(listener, app, std::future::pending())
                .await
                .unwrap();
        });
        TestApp {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            state,
            blob_dir: self.blob_dir.clone(),
            statements: Arc::default(),
            counted: Arc::default(),
            _postgres: None,
            _dir: dir,
        }
    }
}

/// A GraphQL answer.
#[derive(Debug)]
pub struct Gql {
    pub status: u16,
    pub body: Value,
}

impl Gql {
    /// `data`, asserting there were no errors.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {}",
            self.body
        );
        &self.body["data"]
    }

    /// The first error's `extensions.code`.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error, got {}", self.body))
    }

    /// The first error's code, or `OK` when there was none.
    pub fn code_or_ok(&self) -> &str {
        match self.body.get("errors") {
            None => "OK",
            Some(_) => self.code(),
        }
    }

    /// The first error's extensions.
    pub fn extensions(&self) -> &Value {
        &self.body["errors"][0]["extensions"]
    }

    /// The first error's message.
    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }
}

impl TestApp {
    /// How many SQL statements the server has run so far.
    pub fn statements(&self) -> usize {
        self.statements.load(Ordering::SeqCst)
    }

    /// Has the server read `token`'s account once, so statement counts taken next leave that
    /// read out (a credential stays cached until an account changes).
    pub async fn warm_credential(&self, token: &str) {
        self.gql(Some(token), "{ me { username } }", json!({}))
            .await
            .data();
    }

    /// POSTs a GraphQL operation, with a bearer token if given.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Gql {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap();
        Gql { status, body }
    }

    /// Makes a model public: its owner asks, an administrator approves.
    pub async fn publish(&self, owner: &str, admin: &str, model_id: &str) {
        self.gql(
            Some(owner),
            "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
            json!({ "id": model_id }),
        )
        .await
        .data();
        self.gql(
            Some(admin),
            "mutation($id: ID!) { approveModel(modelId: $id) { id } }",
            json!({ "id": model_id }),
        )
        .await
        .data();
    }

    /// Registers a user and returns their access token.
    pub async fn register(&self, username: &str) -> String {
        let answer = self
            .gql(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { token } }",
                json!({ "i": { "username": username, "email": format!("{username}@example.com"), "password": "correct horse battery" } }),
            )
            .await;
        answer.data()["register"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an administrator (through the service `modelhub create-admin` uses) and logs in.
    pub async fn admin(&self, username: &str) -> String {
        modelhub::services::accounts::create_admin(
            &self.state,
            modelhub::services::accounts::Registration {
                username: username.into(),
                email: format!("{username}@example.com"),
                password: "correct horse battery".into(),
            },
        )
        .await
        .map_err(|e| e.cause().unwrap_or_else(|| e.message()))
        .unwrap();
        let answer = self
            .gql(
                None,
                "mutation($i: LoginInput!) { login(input: $i) { token } }",
                json!({ "i": { "username": username, "password": "correct horse battery" } }),
            )
            .await;
        answer.data()["login"]["token"].as_str().unwrap().to_owned()
    }

    /// Sends a GraphQL multipart request with one file under variable `file`.
    pub async fn upload(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Gql {
        let mut variables = variables;
        variables["file"] = Value::Null;
        let operations = json!({ "query": query, "variables": variables });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()),
            );
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap();
        Gql { status, body }
    }

    /// Sends a GraphQL multipart request with several files under variable `files`, as
    /// `[{ path, file }]`, one file part each.
    pub async fn upload_files(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        files: &[(String, Vec<u8>)],
    ) -> Gql {
        let mut variables = variables;
        variables["files"] = files
            .iter()
            .map(|(path, _)| json!({ "path": path, "file": null }))
            .collect();
        let operations = json!({ "query": query, "variables": variables });
        let map: serde_json::Map<String, Value> = (0..files.len())
            .map(|i| (i.to_string(), json!([format!("variables.files.{i}.file")])))
            .collect();
        let mut form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", Value::Object(map).to_string());
        // The paths travel in the variables; the parts' own file names are not used.
        for (i, (_, bytes)) in files.iter().enumerate() {
            form = form.part(
                i.to_string(),
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(format!("part-{i}")),
            );
        }
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap();
        Gql { status, body }
    }

    /// Uploads a model (createModel) and returns the answer.
    pub async fn create_model(
        &self,
        token: &str,
        input: Value,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Gql {
        self.upload(
            Some(token),
            "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id name currentVersion { id version sha256 sizeBytes format } } }",
            json!({ "input": input }),
            filename,
            bytes,
        )
        .await
    }

    /// Uploads a version (createModelVersion) and returns the answer.
    pub async fn create_version(
        &self,
        token: &str,
        model_id: &str,
        input: Value,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Gql {
        self.upload(
            Some(token),
            "mutation($id: ID!, $input: CreateVersionInput!, $file: Upload!) { createModelVersion(modelId: $id, input: $input, file: $file) { id version sha256 sizeBytes format } }",
            json!({ "id": model_id, "input": input }),
            filename,
            bytes,
        )
        .await
    }

    /// Every file under the blob directory (committed blobs and staging leftovers), without the
    /// staging area's lock files.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        files_under(&self.blob_dir)
    }

    /// A version's signed download link, as `token`'s holder (or anonymous) asks for it.
    pub async fn download_url(&self, token: Option<&str>, version_id: &str) -> String {
        self.gql(
            token,
            "query($id: ID!) { modelVersion(id: $id) { downloadUrl } }",
            json!({ "id": version_id }),
        )
        .await
        .data()["modelVersion"]["downloadUrl"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Writes the download counts noted so far (the server does so every second).
    /// Writes the downloads noted so far and returns how many were counted since the last
    /// call, whether this flush or the server's own periodic one wrote them.
    pub async fn flush_downloads(&self) -> u64 {
        self.state.downloads.flush(&self.state).await.unwrap();
        let now = self.count_rows("download_events").await;
        let before = self.counted.swap(now, std::sync::atomic::Ordering::SeqCst);
        u64::try_from(now - before).unwrap()
    }

    /// Asserts that the server still answers its liveness probe.
    pub async fn assert_serving(&self) {
        let alive = self
            .client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(alive.status(), 200);
    }

    /// Counts the rows of a table.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let row = self
            .state
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.state.db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    /// Waits (bounded) until `check` holds: for effects of a request the client has abandoned.
    pub async fn eventually<F: AsyncFn() -> bool>(&self, what: &str, check: F) {
        for _ in 0..500 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting until {what}");
    }
}

/// Sends the head of a multipart request to `path`: the text `parts`, then the head of a file
/// part `file_field` declared 1 GiB, and only that file's first MiB; then reads the answer
/// without sending more. Returns its status code and the whole answer (headers included).
pub async fn send_head_of_huge_form(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    parts: &[(&str, String)],
    file_field: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BOUNDARY: &str = "modelhub-test-boundary";
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    ));
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let length = body.len() as u64 + (1u64 << 30) + tail.len() as u64;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {length}\r\n{auth}\r\n{body}",
        app.addr
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may already have answered and stopped reading.
    let _ = stream.write_all(&vec![0x5a; 1 << 20]).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server waited for the rest of the file");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

/// A transformers-like folder of `n` files (n ≥ 3), sub-folders included.
pub fn transformers_folder(n: usize) -> Folder {
    let mut files = vec![
        (
            "config.json".to_owned(),
            br#"{"model_type": "bert", "vocab_size": 30522}"#.to_vec(),
        ),
        ("README.md".to_owned(), b"# A test model\n".to_vec()),
        ("model.safetensors".to_owned(), safetensors(64)),
    ];
    for i in 0..n - 3 {
        let path = match i % 3 {
            0 => format!("tokenizer/part-{i:03}.json"),
            1 => format!("a/b/{i:03}.json"),
            _ => format!("a/{i:03}.txt"),
        };
        files.push((path, format!("{{\"i\": {i}}}\n").into_bytes()));
    }
    files
}

/// Writes `files` under `dir`.
pub fn write_folder(dir: &std::path::Path, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

/// A file made by `tests/fixtures/make_fixtures.py`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The seed document's scikit-learn model: a RandomForestClassifier saved with joblib
/// (made by `tests/fixtures/make_fixtures.py`).
pub fn random_forest() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/random_forest.joblib"))
        .unwrap()
}

/// A small valid safetensors file with one F32 tensor of `n` values.
pub fn safetensors(n: usize) -> Vec<u8> {
    let header = format!(
        "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{}]}}}}",
        n * 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend((0..n).flat_map(|i| (i as f32).to_le_bytes()));
    bytes
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Files to upload: (path, bytes).
pub type Folder = Vec<(String, Vec<u8>)>;

/// The digest of a set of files, as documented: the SHA-256 of `<sha256> <size> <path>\n`
/// lines sorted by path.
pub fn digest_of(files: &[(String, Vec<u8>)]) -> String {
    let mut lines: Vec<(String, String)> = files
        .iter()
        .map(|(path, bytes)| {
            (
                path.clone(),
                format!("{} {} {path}\n", sha256_hex(bytes), bytes.len()),
            )
        })
        .collect();
    lines.sort();
    let manifest: String = lines.into_iter().map(|(_, line)| line).collect();
    sha256_hex(manifest.as_bytes())
}
