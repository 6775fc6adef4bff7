//! The bad-input matrix: malformed bodies, wrong content types, invalid UTF-8, oversized
//! headers and bodies, absurd pagination, streams cut off. Every case is a 4xx with an error
//! code (hyper's own 431 for oversized headers has no body), never a 5xx, and the database and
//! blob store are unchanged afterwards.

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::helpers::{TestApp, random_forest, spawn_app};

/// What the database and blob store hold; must not change under bad input.
async fn snapshot(app: &TestApp) -> (i64, i64, i64, Vec<std::path::PathBuf>) {
    (
        app.count_rows("users").await,
        app.count_rows("models").await,
        app.count_rows("model_versions").await,
        app.blob_files(),
    )
}

/// Sends a raw request and returns the status and the body (if JSON).
async fn raw(
    app: &TestApp,
    content_type: Option<&str>,
    token: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Asserts a 4xx answer with the expected error code.
fn refused(case: &str, (status, body): &(u16, Value), expected: &str) {
    assert!(
        (400..500).contains(status),
        "{case}: status {status}, {body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"], expected,
        "{case}: {body}"
    );
}

const CREATE_MODEL: &str = "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id } }";

fn operations() -> String {
    json!({ "query": CREATE_MODEL, "variables": { "input": { "name": "bad", "version": "1.0.0", "framework": "SKLEARN" }, "file": null } }).to_string()
}

/// A multipart body from (name, filename, bytes) parts, optionally without its closing line.
fn multipart(parts: &[(&str, Option<&str>, &[u8])], terminated: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(b"--XyZ\r\ncontent-disposition: form-data; name=\"");
        body.extend_from_slice(name.as_bytes());
        body.push(b'"');
        if let Some(filename) = filename {
            body.extend_from_slice(format!("; filename=\"{filename}\"").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    if terminated {
        body.extend_from_slice(b"--XyZ--\r\n");
    }
    body
}

#[tokio::test]
async fn malformed_multipart_bodies_are_refused_with_a_code() {
    let app = spawn_app().await;
    let token = app.register("multipart").await;
    let before = snapshot(&app).await;
    let ops = operations();
    let file = random_forest();
    let map = br#"{"0":["variables.file"]}"#.as_slice();
    let huge = format!(
        r#"{{"query":"{{ me {{ id }} }}","variables":{{"pad":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let mut invalid_utf8 = ops.clone().into_bytes();
    invalid_utf8.splice(10..10, [0xff, 0xfe]);
    let content_type = Some("multipart/form-data; boundary=XyZ");
    let cases: Vec<(&str, Option<&str>, Vec<u8>, &str)> = vec![
        (
            "map names a variable the operation lacks",
            content_type,
            multipart(
                &[
                    ("operations", None, ops.as_bytes()),
                    ("map", None, br#"{"0":["variables.input.nope.deeper"]}"#),
                    ("0", Some("m.joblib"), &file),
                ],
                true,
            ),
            "BAD_USER_INPUT",
        ),
        (
            "duplicate file parts",
            content_type,
            multipart(
                &[
                    ("operations", None, ops.as_bytes()),
                    ("map", None, map),
                    ("0", Some("m.joblib"), &file),
                    ("0", Some("m.joblib"), &file),
                ],
                true,
            ),
            "BAD_USER_INPUT",
        ),
        (
            "duplicate operations",
            content_type,
            multipart(
                &[
                    ("operations", None, ops.as_bytes()),
                    ("operations", None, ops.as_bytes()),
                    ("map", None, map),
                    ("0", Some("m.joblib"), &file),
                ],
                true,
            ),
            "BAD_USER_INPUT",
        ),
        (
            "files before map",
            content_type,
            multipart(
                &[
                    ("operations", None, ops.as_bytes()),
                    ("0", Some("m.joblib"), &file),
                    ("map", None, map),
                ],
                true,
            ),
            "BAD_USER_INPUT",
        ),
        (
            "unterminated body",
            content_type,
            multipart(
                &[
                    ("operations", None, ops.as_bytes()),
                    ("map", None, map),
                    ("0", Some("m.joblib"), &file),
                ],
                false,
            ),
            "BAD_USER_INPUT",
        ),
        (
            "huge operations",
            content_type,
            multipart(
                &[("operations", None, huge.as_bytes()), ("map", None, b"{}")],
                true,
            ),
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "invalid UTF-8 in operations",
            content_type,
            multipart(
                &[
                    ("operations", None, &invalid_utf8),
                    ("map", None, map),
                    ("0", Some("m.joblib"), &file),
                ],
                true,
            ),
            "BAD_USER_INPUT",
        ),
        (
            "no boundary",
            Some("multipart/form-data"),
            multipart(&[("operations", None, ops.as_bytes())], true),
            "BAD_USER_INPUT",
        ),
        (
            "another boundary",
            Some("multipart/form-data; boundary=other"),
            multipart(&[("operations", None, ops.as_bytes())], true),
            "BAD_USER_INPUT",
        ),
        ("empty body", content_type, Vec::new(), "BAD_USER_INPUT"),
    ];
    for (case, content_type, body, expected) in cases {
        refused(case, &raw(&app, content_type, &token, body).await, expected);
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn malformed_json_requests_and_wrong_content_types_are_refused_with_a_code() {
    let app = spawn_app().await;
    let token = app.register("json").await;
    let before = snapshot(&app).await;
    let register = br#"{"query":"mutation { register(input: {username: \"sneaky\", email: \"s@example.com\", password: \"correct horse battery\"}) { token } }"}"#;
    let mut invalid_utf8 = br#"{"query":"{ models(filter: {search: \"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xc3, 0x28, 0xff]);
    invalid_utf8.extend_from_slice(br#"\"}) { totalCount } }"}"#);
    let oversized = format!(
        r#"{{"query":"{{ me {{ id }} }}","variables":{{"pad":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let json = Some("application/json");
    let cases: Vec<(&str, Option<&str>, Vec<u8>, &str)> = vec![
        ("invalid UTF-8", json, invalid_utf8, "BAD_USER_INPUT"),
        (
            "not JSON",
            json,
            b"query { me { id } }".to_vec(),
            "BAD_USER_INPUT",
        ),
        ("empty body", json, Vec::new(), "BAD_USER_INPUT"),
        ("a number", json, b"42".to_vec(), "BAD_USER_INPUT"),
        (
            "no query",
            json,
            br#"{"variables":{}}"#.to_vec(),
            "BAD_USER_INPUT",
        ),
        (
            "variables not an object",
            json,
            br#"{"query":"{ me { id } }","variables":[1]}"#.to_vec(),
            "BAD_USER_INPUT",
        ),
        (
            "cut-off JSON",
            json,
            register[..40].to_vec(),
            "BAD_USER_INPUT",
        ),
        (
            "oversized body",
            json,
            oversized.into_bytes(),
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "text/plain",
            Some("text/plain"),
            register.to_vec(),
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "form-encoded",
            Some("application/x-www-form-urlencoded"),
            register.to_vec(),
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "XML",
            Some("application/xml"),
            b"<query/>".to_vec(),
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "no content type",
            None,
            register.to_vec(),
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ];
    for (case, content_type, body, expected) in cases {
        refused(case, &raw(&app, content_type, &token, body).await, expected);
    }
    // The same mutation with the right content type goes through: the refusals were the types.
    assert_eq!(snapshot(&app).await, before);
    let (status, body) = raw(&app, json, &token, register.to_vec()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.count_rows("users").await, before.0 + 1);
}

/// Writes `request` on a fresh connection (closing our side after it if `close`) and returns
/// the status line's code, or 0 if the server closed the connection without answering.
fn status_of(addr: std::net::SocketAddr, request: &[u8], close: bool) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // The server may answer and close before it has read everything we send.
    let _ = stream.write_all(request);
    if close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn oversized_headers_and_streams_cut_off_are_refused_without_effect() {
    let app = spawn_app().await;
    let token = app.register("headers").await;
    let before = snapshot(&app).await;
    let addr = app.addr;
    let big_header = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nx-padding: {}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}",
        "a".repeat(1024 * 1024)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nhost: {addr}\r\n{}connection: close\r\n\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let body = r#"{"query":"mutation { register(input: {username: \"cut\", email: \"c@example.com\", password: \"correct horse battery\"}) { token } }"}"#;
    let cut_off = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        &body[..body.len() - 5]
    );
    let cut_chunked = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n",
        body.len()
    );
    let bad_request_line = b"GARBAGE / NOPE\r\n\r\n".to_vec();
    let statuses = tokio::task::spawn_blocking(move || {
        vec![
            (
                "a 1 MiB header",
                status_of(addr, big_header.as_bytes(), false),
            ),
            (
                "200 headers",
                status_of(addr, many_headers.as_bytes(), false),
            ),
            (
                "a body cut short",
                status_of(addr, cut_off.as_bytes(), true),
            ),
            (
                "a chunked body cut short",
                status_of(addr, cut_chunked.as_bytes(), true),
            ),
            (
                "a garbage request line",
                status_of(addr, &bad_request_line, true),
            ),
        ]
    })
    .await
    .unwrap();
    for (case, status) in statuses {
        // A client that stops half-way gets no answer (0) or a 400; never a 5xx.
        assert!(
            status == 0 || (400..500).contains(&status),
            "{case}: {status}"
        );
        if case.contains("header") {
            assert_eq!(status, 431, "{case}");
        }
    }
    assert_eq!(snapshot(&app).await, before);
    // Still serving.
    assert_eq!(
        app.gql(Some(&token), "{ me { username } }", json!({}))
            .await
            .data()["me"]["username"],
        "headers"
    );
}

#[tokio::test]
async fn absurd_pagination_and_identifiers_are_bad_input() {
    let app = spawn_app().await;
    let token = app.admin("pager").await;
    app.create_model(
        &token,
        json!({ "name": "paged", "version": "1.0.0", "framework": "SKLEARN" }),
        "m.joblib",
        random_forest(),
    )
    .await
    .data();
    let queries = [
        (
            "negative first",
            "{ models(first: -5) { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "first over 100",
            "{ models(first: 101) { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "first beyond Int",
            "{ models(first: 99999999999) { totalCount } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "garbage cursor",
            "{ models(after: \"%%%\") { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "forged cursor",
            "{ models(after: \"eyJ4IjoxfQ\") { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "versions page",
            "{ models(first: 1) { edges { node { versions(first: 1000) { totalCount } } } } }",
            "BAD_USER_INPUT",
        ),
        (
            "users page",
            "{ users(first: -1) { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "audit cursor",
            "{ auditLog(after: \"x\") { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "bad model id",
            "{ model(id: \"../../etc/passwd\") { id } }",
            "BAD_USER_INPUT",
        ),
        (
            "bad version id",
            "{ modelVersion(id: \"1 OR 1=1\") { id } }",
            "BAD_USER_INPUT",
        ),
    ];
    let long_cursor = format!(
        "{{ models(after: \"{}\") {{ totalCount }} }}",
        "A".repeat(100_000)
    );
    for (case, query, expected) in queries
        .iter()
        .map(|(c, q, e)| (*c, q.to_string(), *e))
        .chain([("a 100 kB cursor", long_cursor, "BAD_USER_INPUT")])
    {
        let answer = app.gql(Some(&token), &query, json!({})).await;
        assert!(answer.status < 500, "{case}: {}", answer.status);
        assert_eq!(answer.code(), expected, "{case}: {}", answer.body);
    }
    for path in [
        "/files/not-a-uuid",
        "/files/00000000-0000-0000-0000-000000000000",
        "/api/v1/models/%2e%2e%2f/download",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
    }
}
