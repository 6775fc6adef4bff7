//! Running ONNX models (`predict`, `POST /api/v1/models/{id}/predict`): the seed's random
//! forest and a small network answer as scikit-learn and numpy do (tests/fixtures/
//! make_inference_fixtures.py), external data is read from the version's own files, and every
//! limit holds: the access policy, the gate, declared inputs, rows, the time limit, the rate
//! limit and the pool's bytes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, fixture, safetensors, spawn_app, spawn_with};

const PREDICT: &str = "mutation($id: ID!, $inputs: JSON!, $path: String) { predict(versionId: $id, inputs: $inputs, path: $path) { path durationMs version { version } outputs { name type shape values } } }";

fn expected(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("inference/{name}"))).unwrap()
}

/// Uploads a one-file model; returns its id and its version's id.
async fn model(app: &TestApp, token: &str, name: &str, file: &str) -> (String, String) {
    let created = app
        .create_model(
            token,
            json!({ "name": name, "framework": "onnx", "version": "1.0.0" }),
            file.rsplit('/').next().unwrap(),
            fixture(file),
        )
        .await;
    let created = &created.data()["createModel"];
    (
        created["id"].as_str().unwrap().to_owned(),
        created["currentVersion"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn predict(
    app: &TestApp,
    token: Option<&str>,
    version: &str,
    inputs: Value,
) -> crate::helpers::Gql {
    app.gql(token, PREDICT, json!({ "id": version, "inputs": inputs }))
        .await
}

fn close(got: &Value, want: &Value, tolerance: f64) -> bool {
    match (got, want) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(x, y, tolerance))
        }
        (x, y) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= tolerance,
    }
}

#[tokio::test]
async fn the_seeds_random_forest_and_a_small_network_answer_as_their_trainers_do() {
    let app = spawn_app().await;
    let owner = app.register("predictor").await;
    let (forest_model, forest) =
        model(&app, &owner, "forest", "inference/random_forest.onnx").await;
    let want = expected("random_forest.expected.json");
    let input = want["input"].as_str().unwrap();
    let ran = predict(&app, Some(&owner), &forest, json!({ input: want["rows"] })).await;
    let ran = &ran.data()["predict"];
    let outputs = ran["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{ran}");
    let (labels, probabilities) = (&outputs[0], &outputs[1]);
    assert_eq!(labels["type"], "INT64");
    assert_eq!(labels["shape"], json!([200]));
    assert_eq!(
        labels["values"], want["labels"],
        "the same label for each of the 200 rows"
    );
    assert_eq!(probabilities["type"], "FLOAT");
    assert_eq!(probabilities["shape"], json!([200, 2]));
    assert!(close(
        &probabilities["values"],
        &want["probabilities"],
        1e-5
    ));
    assert_eq!(ran["version"]["version"], "1.0.0");
    assert_eq!(ran["path"], "random_forest.onnx");

    // The same through the REST path scripts use, by model id (its current version).
    let rest: Value = app
        .client
        .post(format!("{}/api/v1/models/{forest_model}/predict", app.base))
        .bearer_auth(&owner)
        .json(&json!({ "inputs": { input: want["rows"] } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["version_id"], forest.as_str());
    assert_eq!(rest["outputs"][0]["values"], want["labels"], "{rest}");

    // A Gemm/Relu stack, against numpy's float64 answers.
    let (_, mlp) = model(&app, &owner, "mlp", "inference/mlp.onnx").await;
    let want = expected("mlp.expected.json");
    let ran = predict(&app, Some(&owner), &mlp, json!({ "x": want["rows"] })).await;
    let out = &ran.data()["predict"]["outputs"][0];
    assert_eq!(
        (out["name"].as_str(), &out["shape"]),
        (Some("probabilities"), &json!([100, 3]))
    );
    assert!(close(&out["values"], &want["probabilities"], 1e-5));

    // External data comes from the version's own files, laid out as the model names them.
    let weights = fixture("onnx_external/weights.bin");
    let created = app
        .upload_files(
            Some(&owner),
            "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { currentVersion { id } } }",
            json!({ "input": { "name": "external", "framework": "onnx", "version": "1.0.0" } }),
            &[
                ("onnx/model.onnx".to_owned(), fixture("onnx_external/model.onnx")),
                ("onnx/weights.bin".to_owned(), weights),
                ("README.md".to_owned(), b"# external\n".to_vec()),
            ],
        )
        .await;
    let version = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ran = app
        .gql(
            Some(&owner),
            PREDICT,
            json!({ "id": version, "inputs": { "x": [vec![1.0; 4096]] } }),
        )
        .await;
    let ran = &ran.data()["predict"];
    assert_eq!(ran["path"], "onnx/model.onnx");
    // y[j] = Σᵢ W[i][j] = Σᵢ (8i + j) over 4,096 rows.
    let want: Vec<f64> = (0..8)
        .map(|j| 67_092_480.0 + 4096.0 * f64::from(j))
        .collect();
    let got = ran["outputs"][0]["values"][0].as_array().unwrap();
    for (g, w) in got.iter().zip(&want) {
        // float32 sums of 4,096 products: within 1e-4 of the exact sums.
        assert!((g.as_f64().unwrap() - w).abs() / w < 1e-4, "{got:?}");
    }
}

#[tokio::test]
async fn only_what_may_be_read_is_run_and_inputs_must_be_what_the_model_declares() {
    let app = spawn_app().await;
    let owner = app.register("runner").await;
    let stranger = app.register("passer-by").await;
    let (_, mlp) = model(&app, &owner, "mlp", "inference/mlp.onnx").await;
    let row = json!([vec![0.0; 8]]);
    // A private model is not there for others.
    for token in [Some(stranger.as_str()), None] {
        assert_eq!(
            predict(&app, token, &mlp, json!({ "x": row })).await.code(),
            "NOT_FOUND"
        );
    }
    // Inputs are checked against the model's declaration, naming the input.
    for (inputs, says) in [
        (json!({ "y": row }), "not an input"),
        (json!({}), "missing"),
        (json!({ "x": [vec![0.0; 7]] }), "along axis 1"),
        (json!({ "x": [vec!["a"; 8]] }), "not a number"),
        (json!({ "x": vec![[0.0; 8]; 1025] }), "at most 1024"),
        (json!([1, 2]), "must be an object"),
    ] {
        let refused = predict(&app, Some(&owner), &mlp, inputs.clone()).await;
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{inputs}");
        assert!(
            refused.message().contains(says),
            "{inputs}: {}",
            refused.message()
        );
        assert!(
            refused.message().starts_with("inputs"),
            "{}",
            refused.message()
        );
    }
    // A held version is never run, not even by its owner.
    let weights = fixture("onnx_external/weights.bin");
    let held = app
        .upload_files(
            Some(&owner),
            "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { currentVersion { id inspection { status } } } }",
            json!({ "input": { "name": "escape", "framework": "onnx", "version": "1.0.0" } }),
            &[
                ("nested.onnx".to_owned(), fixture("onnx_external/escape_nested.onnx")),
                ("weights.bin".to_owned(), weights),
            ],
        )
        .await;
    let held = &held.data()["createModel"]["currentVersion"];
    assert_eq!(held["inspection"]["status"], "UNSAFE");
    let refused = predict(
        &app,
        Some(&owner),
        held["id"].as_str().unwrap(),
        json!({ "x": [[0.0]] }),
    )
    .await;
    assert_eq!(refused.code(), "FORBIDDEN");
    assert!(
        refused.message().contains("never run"),
        "{}",
        refused.message()
    );
    // An operator the runtime does not implement is named.
    let (_, unsupported) = model(&app, &owner, "frob", "inference/unsupported.onnx").await;
    let refused = predict(
        &app,
        Some(&owner),
        &unsupported,
        json!({ "x": [vec![0.0; 4]] }),
    )
    .await;
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert!(
        refused.message().contains("com.example:Frobnicate"),
        "{}",
        refused.message()
    );
    // Only ONNX models run.
    let weights = app
        .create_model(
            &owner,
            json!({ "name": "weights", "framework": "pytorch", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(3),
        )
        .await;
    let weights = weights.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = predict(&app, Some(&owner), &weights, json!({})).await;
    assert!(
        refused.message().contains("only ONNX models are run"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn the_time_limit_the_rate_limit_and_the_pool_bound_every_call() {
    let app = spawn_with(Options {
        inference: modelhub::config::InferenceOptions {
            memory_bytes: 40 * 1024,
            concurrency: 1,
            timeout: Duration::from_secs(30),
            max_batch: 1024,
            max_values: 1 << 20,
        },
        rate_limits: modelhub::services::rate_limit::Rules {
            predict: "6/3600".parse().unwrap(),
            ..Options::default().rate_limits
        },
        ..Options::default()
    })
    .await;
    let owner = app.register("bounded").await;
    let (_, forest) = model(&app, &owner, "forest", "inference/random_forest.onnx").await;
    let (_, mlp) = model(&app, &owner, "mlp", "inference/mlp.onnx").await;
    let (_, heavy) = model(&app, &owner, "heavy", "inference/heavy.onnx").await;
    let rows = expected("random_forest.expected.json")["rows"].clone();
    // 1: a model larger than the pool is not run (heavy.onnx has 263 kB).
    let refused = predict(&app, Some(&owner), &heavy, json!({ "x": [vec![0.0; 256]] })).await;
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert!(
        refused
            .message()
            .contains("MODELHUB_INFERENCE_MEMORY_BYTES"),
        "{}",
        refused.message()
    );
    // 2, 3: the forest (26 kB) and the network (2 kB) fit together.
    predict(&app, Some(&owner), &forest, json!({ "X": rows }))
        .await
        .data();
    predict(&app, Some(&owner), &mlp, json!({ "x": [vec![0.0; 8]] }))
        .await
        .data();
    assert_eq!(app.state.inference.loaded().await.0, 2);

    // 4: past the time limit, with the run stopped (its slot is free again at once).
    let tight = spawn_with(Options {
        inference: modelhub::config::InferenceOptions {
            memory_bytes: 1 << 20,
            concurrency: 1,
            timeout: Duration::from_millis(30),
            max_batch: 1024,
            max_values: 1 << 20,
        },
        ..Options::default()
    })
    .await;
    let tight_owner = tight.register("hurried").await;
    let (_, slow) = model(&tight, &tight_owner, "heavy", "inference/heavy.onnx").await;
    let big = json!({ "x": vec![vec![1.0; 256]; 1000] });
    let late = predict(&tight, Some(&tight_owner), &slow, big).await;
    assert_eq!(late.code(), "TIMEOUT", "{:?}", late.body);
    assert_eq!(late.status, 503);
    // The run stopped at its next operator and gave its slot back: the whole run would take
    // seconds.
    let mut free = 0;
    for _ in 0..200 {
        free = tight.state.inference.free_slots();
        if free == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(free, 1, "the run went on past its time limit");

    // 4–6 of the budget of 6, then refused before any work.
    for _ in 0..3 {
        predict(&app, Some(&owner), &mlp, json!({ "x": [vec![0.0; 8]] }))
            .await
            .data();
    }
    let limited = predict(&app, Some(&owner), &mlp, json!({ "x": [vec![0.0; 8]] })).await;
    assert_eq!(limited.code(), "RATE_LIMITED");
}
