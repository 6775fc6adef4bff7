//! Limits and hostile input: each refused with its own code, nothing written, the server up.

use serde_json::{Value, json};

use crate::helpers::{random_forest, spawn_app};

async fn post(app: &crate::helpers::TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn code(body: &Value) -> &str {
    let errors = if body.is_array() {
        &body[0]["errors"]
    } else {
        &body["errors"]
    };
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"))
}

#[tokio::test]
async fn each_query_limit_has_its_own_code() {
    let app = spawn_app().await;
    let deep = "{ models(first: 1) { edges { node { owner { models(first: 1) { edges { node { owner { models(first: 1) { edges { node { owner { username } } } } } } } } } } } } }";
    let (_, body) = post(&app, json!({ "query": deep })).await;
    assert_eq!(code(&body), "QUERY_TOO_DEEP");

    // Lists cost their page size times what each item selects: forty aliases of three nested
    // pages of 100 are refused before anything runs; a real page of 50 passes.
    let nested = "models(first: 100) { edges { node { name owner { models(first: 100) { edges { node { name owner { models(first: 100) { edges { node { name } } } } } } } } } } }";
    let aliases: String = (0..40).map(|i| format!("a{i}: {nested} ")).collect();
    let (status, body) = post(&app, json!({ "query": format!("{{ {aliases} }}") })).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX");
    let page = "{ models(first: 50) { totalCount edges { node { id name framework tags owner { username } currentVersion { version sizeBytes } versions(first: 5) { edges { node { version sha256 } } } } } } }";
    let (status, body) = post(&app, json!({ "query": page })).await;
    assert_eq!(status, 200, "{body}");

    let aliases: String = (0..65).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (status, body) = post(&app, json!({ "query": format!("{{ {aliases} }}") })).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "TOO_MANY_ALIASES");

    let batch: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ me { id } }" }))
        .collect();
    let (status, body) = post(&app, Value::Array(batch)).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "BATCH_TOO_LARGE");
    let small: Vec<Value> = (0..3)
        .map(|_| json!({ "query": "{ me { id } }" }))
        .collect();
    let (status, body) = post(&app, Value::Array(small)).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 3);

    let (_, body) = post(
        &app,
        json!({ "query": "{ models(first: 1000) { totalCount } }" }),
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let (_, body) = post(&app, json!({ "query": "{ nope }" })).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
    let (_, body) = post(&app, json!({ "query": "{ me { id " })).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");

    let get = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[(
            "query",
            "mutation { login(input: { username: \"x\", password: \"y\" }) { token } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 400);
    let body: Value = get.json().await.unwrap();
    assert_eq!(code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(app.count_rows("users").await, 0);

    // The access table sees mutations inside fragments; fragments too deep to follow are
    // refused rather than run unchecked.
    let nested = |depth: usize| {
        format!(
            "mutation {{ {} deleteModel(id: \"0190f0e0-0000-7000-8000-000000000000\") {} }}",
            "... on Mutation { ".repeat(depth),
            "} ".repeat(depth)
        )
    };
    let (status, body) = post(&app, json!({ "query": nested(8) })).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    let (status, body) = post(&app, json!({ "query": nested(9) })).await;
    assert_eq!((status, code(&body)), (400, "QUERY_TOO_DEEP"), "{body}");
}

#[tokio::test]
async fn the_same_version_uploaded_twice_at_once_is_created_once() {
    let app = spawn_app().await;
    let token = app.register("racer").await;
    let created = app
        .create_model(
            &token,
            json!({ "name": "race", "framework": "x", "version": "1.0.0" }),
            "m.joblib",
            random_forest(),
        )
        .await;
    let id = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut other = random_forest();
    other.extend_from_slice(b"different tail");
    let (a, b) = tokio::join!(
        app.create_version(
            &token,
            &id,
            json!({ "version": "2.0.0" }),
            "a.joblib",
            other.clone()
        ),
        app.create_version(
            &token,
            &id,
            json!({ "version": "v2.0.0" }),
            "b.joblib",
            other.clone()
        ),
    );
    let outcomes = [a.body["errors"].is_null(), b.body["errors"].is_null()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "{} / {}",
        a.body,
        b.body
    );
    let loser = if outcomes[0] { &b } else { &a };
    assert_eq!(loser.code(), "CONFLICT");
    assert_eq!(app.count_rows("model_versions").await, 2);
    assert_eq!(app.blob_files().len(), 2, "{:?}", app.blob_files());
}

/// Every table the server writes.
const TABLES: [&str; 8] = [
    "users",
    "models",
    "model_versions",
    "model_tags",
    "api_tokens",
    "audit_log",
    "download_events",
    "blob_locks",
];

/// What the server has stored: every file under the blob directory with its bytes, and the
/// row count of every table.
async fn stored(app: &crate::helpers::TestApp) -> (Vec<(std::path::PathBuf, Vec<u8>)>, Vec<i64>) {
    let files = app
        .blob_files()
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    let mut rows = Vec::new();
    for table in TABLES {
        rows.push(app.count_rows(table).await);
    }
    (files, rows)
}

/// Sends `target` as it is (no client-side normalisation of `..` or encoding) and returns the
/// status and body.
async fn raw_get(app: &crate::helpers::TestApp, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                app.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{target}: not an HTTP response: {text}"));
    (status, text)
}

#[tokio::test]
async fn hostile_strings_and_paths_change_nothing() {
    let app = spawn_app().await;
    let token = app.register("hostile").await;
    // Something to lose: a model an injection could drop, list or change.
    let kept = app
        .create_model(
            &token,
            json!({ "name": "kept", "framework": "x", "version": "1.0.0", "license": "mit", "taskType": "classification" }),
            "m.joblib",
            random_forest(),
        )
        .await;
    let kept_version = kept.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = "query($f: ModelFilter) { models(filter: $f) { totalCount edges { node { name } } } }";
    // The filters do find what is there, so the zeros below mean something.
    for filter in [
        json!({ "search": "kept" }),
        json!({ "framework": "x" }),
        json!({ "owner": "hostile" }),
        json!({ "license": "mit" }),
        json!({ "taskType": "classification" }),
    ] {
        let answer = app.gql(Some(&token), q, json!({ "f": filter })).await;
        assert_eq!(answer.data()["models"]["totalCount"], 1, "{filter}");
    }
    let before = stored(&app).await;
    assert_eq!(before.0.len(), 1, "one blob: {:?}", before.0);

    let hostile = [
        "'; DROP TABLE models; --",
        "\" OR 1=1 --",
        "' OR '1'='1",
        "x' UNION SELECT password_hash FROM users --",
        "../../../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "%00%2e%2e%2f",
        "%",
        "_",
        "\u{0}\u{1}",
        "😀 ünïcødé",
    ];
    for text in hostile {
        let control = text.chars().any(char::is_control);
        for (field, filter) in [
            ("filter.search", json!({ "search": text })),
            ("filter.framework", json!({ "framework": text })),
            ("filter.owner", json!({ "owner": text })),
            ("filter.license", json!({ "license": text })),
            ("filter.taskType", json!({ "taskType": text })),
        ] {
            let answer = app.gql(Some(&token), q, json!({ "f": filter })).await;
            let status = if control { 400 } else { 200 };
            assert_eq!(answer.status, status, "{text:?} {field}: {:?}", answer.body);
            if control {
                assert_eq!(answer.code(), "BAD_USER_INPUT", "{text:?} {field}");
                assert_eq!(answer.extensions()["field"], field, "{text:?}");
            } else {
                assert_eq!(
                    answer.data()["models"],
                    json!({ "totalCount": 0, "edges": [] }),
                    "{text:?} {field}"
                );
            }
        }
        // As a path segment, percent-encoded the way a client sends it: no such version.
        let segment: String = text
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        for path in [
            format!("/files/{segment}"),
            format!("/api/v1/models/{segment}/download"),
        ] {
            let response = app
                .client
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}: {body}");
        }
    }
    // Traversal sent raw, without the client resolving the dots first.
    for target in [
        "/files/../../../../etc/passwd",
        "/files/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/models/../../../../etc/passwd/download",
        "/playground/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/playground/assets/../../../../etc/passwd",
    ] {
        let (status, text) = raw_get(&app, target).await;
        assert!((400..500).contains(&status), "{target}: {text}");
        assert!(!text.contains("root:"), "{target} served a system file");
    }
    let after = stored(&app).await;
    assert!(after == before, "hostile requests changed what is stored");
    // The model is still there, and still downloads.
    let still = app
        .gql(Some(&token), q, json!({ "f": { "search": "kept" } }))
        .await;
    assert_eq!(still.data()["models"]["edges"][0]["node"]["name"], "kept");
    let file = app
        .client
        .get(format!("{}/files/{kept_version}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert!(file.bytes().await.unwrap() == random_forest());

    // A path-like upload file name never reaches the file system: the new bytes land at
    // their content address inside the blob directory, and only the name's last part is kept.
    let mut bytes = random_forest();
    bytes.extend_from_slice(b"traversal");
    let answer = app
        .upload(
            Some(&token),
            "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { currentVersion { filename sha256 } } }",
            json!({ "input": { "name": "traversal", "framework": "x", "version": "1.0.0" } }),
            "../../../etc/passwd.joblib",
            bytes.clone(),
        )
        .await;
    let version = &answer.data()["createModel"]["currentVersion"];
    assert_eq!(version["filename"], "passwd.joblib");
    let sha = crate::helpers::sha256_hex(&bytes);
    assert_eq!(version["sha256"], sha.as_str());
    let files = app.blob_files();
    let new: Vec<_> = files
        .iter()
        .filter(|p| !before.0.iter().any(|(old, _)| old == *p))
        .collect();
    assert_eq!(
        new,
        vec![&app.blob_dir.join("blobs/sha256").join(&sha[..2]).join(&sha)],
        "{files:?}"
    );
    assert!(std::fs::read(new[0]).unwrap() == bytes);
    // Nothing named after the upload anywhere in the test's directory, nor where the dots
    // lead from it.
    let test_dir = app.blob_dir.parent().unwrap();
    let named: Vec<_> = crate::helpers::files_under(test_dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("passwd"))
        .collect();
    assert!(named.is_empty(), "{named:?}");
    for dir in app.blob_dir.ancestors() {
        assert!(!dir.join("etc/passwd.joblib").exists(), "{}", dir.display());
    }
    assert_eq!(app.count_rows("models").await, 2);
    app.assert_serving().await;
}

#[tokio::test]
async fn gc_removes_unused_blobs_and_verify_finds_damage() {
    use modelhub::services::maintenance::{self, Problem};
    let app = spawn_app().await;
    let token = app.register("keeper").await;
    let bytes = random_forest();
    app.create_model(
        &token,
        json!({ "name": "kept", "framework": "x", "version": "1.0.0" }),
        "m.joblib",
        bytes.clone(),
    )
    .await
    .data();
    // An orphan: a blob no version uses, as a crash between blob and row would leave.
    let orphan = crate::helpers::safetensors(7);
    let orphan_sha = crate::helpers::sha256_hex(&orphan);
    let orphan_dir = app.blob_dir.join("blobs/sha256").join(&orphan_sha[..2]);
    std::fs::create_dir_all(&orphan_dir).unwrap();
    std::fs::write(orphan_dir.join(&orphan_sha), &orphan).unwrap();

    let young = maintenance::gc(&app.state, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        (young.deleted, young.kept_recent),
        (0, 1),
        "a young orphan may be an upload in flight"
    );
    let report = maintenance::gc(&app.state, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(report.freed_bytes, orphan.len() as u64);
    assert_eq!(app.blob_files().len(), 1);

    let (checked, problems) = maintenance::verify(&app.state).await.unwrap();
    assert_eq!((checked, problems.len()), (1, 0));
    // Damage the kept blob, then lose it.
    let kept = app.blob_files()[0].clone();
    let mut damaged = bytes.clone();
    damaged[100] ^= 0xff;
    std::fs::write(&kept, &damaged).unwrap();
    let (_, problems) = maintenance::verify(&app.state).await.unwrap();
    assert!(
        matches!(&problems[..], [Problem::Corrupt { .. }]),
        "{problems:?}"
    );
    std::fs::remove_file(&kept).unwrap();
    let (_, problems) = maintenance::verify(&app.state).await.unwrap();
    assert!(
        matches!(&problems[..], [Problem::Missing { .. }]),
        "{problems:?}"
    );
}

fn strict(login: u32) -> crate::helpers::Options {
    let mut options = crate::helpers::Options::default();
    options.rate_limits.login = modelhub::services::rate_limit::Rule {
        burst: login,
        period: std::time::Duration::from_secs(3600),
    };
    options.rate_limits.create_token = options.rate_limits.login;
    options
}

async fn login(app: &crate::helpers::TestApp, username: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": format!("mutation {{ login(input: {{ username: \"{username}\", password: \"not it at all\" }}) {{ token }} }}") }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_attempts_are_rate_limited_with_retry_after() {
    let app = crate::helpers::spawn_with(strict(3)).await;
    for _ in 0..3 {
        let body: Value = login(&app, "victim").await.json().await.unwrap();
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    let limited = login(&app, "victim").await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // The IP's budget is spent too: another account from the same client is limited.
    let body: Value = login(&app, "someone-else").await.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");
    // API token creation has its own budget per user.
    let token = app.register("minter").await;
    for i in 0..4 {
        let answer = app
            .gql(
                Some(&token),
                "mutation { createApiToken(input: { name: \"t\", scopes: [READ] }) { token } }",
                json!({}),
            )
            .await;
        if i < 3 {
            answer.data();
        } else {
            assert_eq!(answer.code(), "RATE_LIMITED");
        }
    }
}

#[tokio::test]
async fn replicas_sharing_redis_share_one_budget() {
    let Some(_) = crate::helpers::test_redis_url("replicas_sharing_redis_share_one_budget") else {
        return;
    };
    let prefix = format!("modelhub-test-{}", uuid::Uuid::new_v4());
    let mut options = strict(2);
    options.redis_prefix = Some(prefix);
    let first = crate::helpers::spawn_with(options.clone()).await;
    let second = crate::helpers::spawn_with(options).await;
    let body: Value = login(&first, "shared").await.json().await.unwrap();
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let body: Value = login(&second, "shared").await.json().await.unwrap();
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let limited = login(&first, "shared").await;
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");
}

async fn login_from(app: &crate::helpers::TestApp, forwarded_for: &str, username: &str) -> Value {
    app.client
        .post(format!("{}/graphql", app.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "query": format!("mutation {{ login(input: {{ username: \"{username}\", password: \"not it at all\" }}) {{ token }} }}") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn forwarded_clients_get_their_own_budget_only_behind_a_trusted_proxy() {
    let mut behind_proxy = strict(2);
    behind_proxy.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let app = crate::helpers::spawn_with(behind_proxy).await;
    for username in ["a1", "a2"] {
        assert_eq!(
            code(&login_from(&app, "198.51.100.1", username).await),
            "UNAUTHENTICATED"
        );
    }
    assert_eq!(
        code(&login_from(&app, "198.51.100.1", "a3").await),
        "RATE_LIMITED"
    );
    // Another client behind the same proxy has its own budget; a spoofed hop before it is
    // not believed.
    let other = login_from(&app, "198.51.100.1, 198.51.100.2", "b1").await;
    assert_eq!(code(&other), "UNAUTHENTICATED");

    // Exposed directly: the header is the client's own claim and changes nothing.
    let app = crate::helpers::spawn_with(strict(2)).await;
    for (ip, username) in [("192.0.2.1", "c1"), ("192.0.2.2", "c2")] {
        assert_eq!(
            code(&login_from(&app, ip, username).await),
            "UNAUTHENTICATED"
        );
    }
    assert_eq!(
        code(&login_from(&app, "192.0.2.3", "c3").await),
        "RATE_LIMITED"
    );
}

#[tokio::test]
async fn deleting_the_last_use_of_a_file_while_it_is_uploaded_again_keeps_the_file() {
    let app = spawn_app().await;
    let token = app.register("racer").await;
    let bytes = crate::helpers::safetensors(64);
    let created = app
        .create_model(
            &token,
            json!({ "name": "racy", "version": "1.0.0", "framework": "PYTORCH" }),
            "w.safetensors",
            bytes.clone(),
        )
        .await;
    let model = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut last = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 1..=12 {
        // The only version using the bytes goes while a new version with the same bytes comes.
        let (deleted, uploaded) = tokio::join!(
            app.gql(
                Some(&token),
                "mutation($id: ID!) { deleteModelVersion(id: $id) }",
                json!({ "id": last }),
            ),
            app.create_version(
                &token,
                &model,
                json!({ "version": format!("1.0.{i}") }),
                "w.safetensors",
                bytes.clone(),
            ),
        );
        deleted.data();
        last = uploaded.data()["createModelVersion"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (checked, problems) = modelhub::services::maintenance::verify(&app.state)
            .await
            .map_err(|e| e.message())
            .unwrap();
        assert_eq!((checked, problems), (1, vec![]), "round {i}");
    }
    let file = app
        .client
        .get(format!("{}/files/{last}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(file == bytes);
}

#[tokio::test]
async fn failing_logins_from_elsewhere_do_not_lock_a_user_out_but_guessing_stays_slow() {
    let mut options = strict(2);
    options.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let app = crate::helpers::spawn_with(options).await;
    app.register("victim").await;
    // A stranger fails twice under the victim's name: that address is done.
    for _ in 0..2 {
        assert_eq!(
            code(&login_from(&app, "203.0.113.7", "victim").await),
            "UNAUTHENTICATED"
        );
    }
    assert_eq!(
        code(&login_from(&app, "203.0.113.7", "victim").await),
        "RATE_LIMITED"
    );
    // The same /64 is the same client, whatever its last 64 bits.
    assert_eq!(
        code(&login_from(&app, "2001:db8:1:2::1", "victim").await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&login_from(&app, "2001:db8:1:2::2", "victim").await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&login_from(&app, "2001:db8:1:2:ffff::3", "victim").await),
        "RATE_LIMITED"
    );
    // The victim, from home, still logs in.
    let home = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("x-forwarded-for", "198.51.100.20")
        .json(&json!({ "query": "mutation { login(input: { username: \"victim\", password: \"correct horse battery\" }) { token } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(home["data"]["login"]["token"].is_string(), "{home}");
    // Guessing from many addresses: the account's own budget (ten times the rule) runs out.
    let mut refused = None;
    for i in 0..30 {
        let answer = login_from(&app, &format!("192.0.2.{i}"), "victim").await;
        if code(&answer) == "RATE_LIMITED" {
            refused = Some(i);
            break;
        }
    }
    // 2 + 2 + 1 attempts were made before; the budget is 20.
    assert_eq!(refused, Some(15));
}

/// The introspection query graphql-js's `getIntrospectionQuery()` builds, which GraphiQL,
/// Apollo tooling, code generators and Postman send (with input value deprecation on).
const STANDARD_INTROSPECTION: &str = r"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
    kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name }
  } } } } } } } }
}
";

#[tokio::test]
async fn the_standard_introspection_query_passes_its_own_limits() {
    let app = spawn_app().await;
    let (status, body) = post(&app, json!({ "query": STANDARD_INTROSPECTION })).await;
    assert_eq!(status, 200, "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "ModelVersion"), "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    // Data fields beside it run under the ordinary limits: this is too deep for them.
    let mixed = "{ __schema { queryType { name } } models(first: 1) { edges { node { owner { models(first: 1) { edges { node { owner { models(first: 1) { edges { node { owner { username } } } } } } } } } } } } }";
    let (_, body) = post(&app, json!({ "query": mixed })).await;
    assert_eq!(code(&body), "QUERY_TOO_DEEP");
}
