//! `GET /metrics`, in a test binary of its own. The metrics recorder is one per process, and
//! the `api` binary runs many tests in parallel in one process, so only here are the counts
//! this test's alone: it asserts exact differences around its own requests. Keep it the only
//! test in this binary.

#![allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on the first surprise"
)]

#[path = "api/helpers.rs"]
#[allow(
    dead_code,
    reason = "the helpers serve the api binary; this one uses a few"
)]
mod helpers;

use serde_json::json;

use helpers::{TestApp, safetensors, spawn_app};

/// The sum of the samples named exactly `metric` whose labels include every one of `labels`
/// (0 when there is none yet: a counter shows once it is first incremented).
fn sample(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, rest) = series.split_once('{').unwrap_or((series, ""));
            (name == metric && labels.iter().all(|l| rest.contains(l)))
                .then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_uploads_and_downloads() {
    let app = spawn_app().await;
    let token = app.register("metered").await;
    let before = scrape(&app).await;

    // Three uploads: two stored, one refused (its version exists); two downloads; one miss.
    let first = safetensors(4);
    let second = safetensors(5);
    let created = app
        .create_model(
            &token,
            json!({ "name": "metered", "version": "1.0.0", "framework": "PYTORCH" }),
            "w.safetensors",
            first.clone(),
        )
        .await;
    let model = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let version = app
        .create_version(
            &token,
            &model,
            json!({ "version": "1.1.0" }),
            "w.safetensors",
            second.clone(),
        )
        .await;
    let version = version.data()["createModelVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = app
        .create_version(
            &token,
            &model,
            json!({ "version": "1.1.0" }),
            "w.safetensors",
            safetensors(6),
        )
        .await;
    assert_eq!(again.code(), "CONFLICT");
    for _ in 0..2 {
        let download = app
            .client
            .get(format!("{}/files/{version}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 200);
        assert!(download.bytes().await.unwrap() == second);
    }
    let missing = app
        .client
        .get(format!("{}/files/{}", app.base, uuid::Uuid::now_v7()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let after = scrape(&app).await;
    let delta = |metric: &str, labels: &[&str]| {
        sample(&after, metric, labels) - sample(&before, metric, labels)
    };
    let graphql = ["method=\"POST\"", "route=\"/graphql\""];
    assert_eq!(
        delta(
            "http_requests_total",
            &[graphql[0], graphql[1], "status=\"200\""]
        ),
        2.0,
        "{after}"
    );
    // An upload's answer carries its error's status.
    assert_eq!(
        delta(
            "http_requests_total",
            &[graphql[0], graphql[1], "status=\"409\""]
        ),
        1.0
    );
    let files = ["method=\"GET\"", "route=\"/files/{version_id}\""];
    assert_eq!(
        delta(
            "http_requests_total",
            &[files[0], files[1], "status=\"200\""]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "http_requests_total",
            &[files[0], files[1], "status=\"404\""]
        ),
        1.0
    );
    // The first scrape is counted once it has answered.
    assert_eq!(
        delta(
            "http_requests_total",
            &["route=\"/metrics\"", "status=\"200\""]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "http_request_duration_seconds_count",
            &["method=\"POST\"", "route=\"/graphql\""]
        ),
        3.0
    );
    assert_eq!(
        delta(
            "http_request_duration_seconds_bucket",
            &["route=\"/graphql\"", "le=\"+Inf\""]
        ),
        3.0
    );
    assert_eq!(
        delta("modelhub_uploads_total", &["outcome=\"stored\""]),
        2.0
    );
    assert_eq!(
        delta("modelhub_uploads_total", &["outcome=\"refused\""]),
        1.0
    );
    assert_eq!(
        delta("modelhub_upload_bytes_total", &[]),
        (first.len() + second.len()) as f64
    );
    assert_eq!(
        delta("modelhub_inspections_total", &["status=\"safe\""]),
        3.0
    );
    assert_eq!(delta("modelhub_downloads_total", &[]), 2.0);
    assert_eq!(sample(&after, "modelhub_build_info", &[]), 1.0);
}
