//! The HTTP surface around GraphQL: probes, the playground, CORS, headers, bad requests.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn probes_answer() {
    let app = spawn_app().await;
    let live = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body, json!({ "database": "ok", "storage": "ok" }));
}

/// Every `src="…"` and `href="…"` in a page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    found
}

#[tokio::test]
async fn playground_loads_every_asset_from_the_server_itself() {
    let app = spawn_app().await;
    let root = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(root.url().path(), "/playground");
    let page = app
        .client
        .get(format!("{}/playground", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/graphql"));
    let assets = references(&html);
    assert!(
        assets.len() >= 4,
        "expected the scripts and styles, found {assets:?}"
    );
    for asset in assets {
        assert!(
            asset.starts_with('/'),
            "{asset} is not served by Model Hub itself"
        );
        let response = app
            .client
            .get(format!("{}{asset}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn get_queries_and_cors_preflight_work() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "{ me { id } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "me": null } }));

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn unparseable_requests_get_a_coded_error() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let big = "x".repeat(3 * 1024 * 1024);
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
}
