//! Static inspection of uploads: real model files of every format, malicious pickles in all
//! their disguises, malformed files, and the policy for files that run code.

use serde_json::{Value, json};

use crate::helpers::{
    Options, TestApp, fixture, random_forest, safetensors, spawn_app, spawn_with,
};

/// The shell command in the malicious fixtures (`tests/fixtures/make_fixtures.py`): what
/// their `os.system` call runs when Python unpickles them.
const FIXTURE_COMMAND: &[u8] = b"touch /tmp/modelhub-inspection-marker";

const INSPECTION: &str = "inspection { status inspector error parameterCount tensorCount dtypes estimatorClass sklearnVersion frameworkHints metadata inputs { name elementType shape } outputs { name elementType shape } findings { module name severity reason } }";

/// Uploads a file as a new model and returns its version's inspection.
async fn inspect(
    app: &TestApp,
    token: &str,
    name: &str,
    format: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> Value {
    let query = format!(
        "mutation($input: CreateModelInput!, $file: Upload!) {{ createModel(input: $input, file: $file) {{ id currentVersion {{ id {INSPECTION} }} }} }}"
    );
    let answer = app
        .upload(
            Some(token),
            &query,
            json!({ "input": { "name": name, "framework": "test", "version": "1.0.0", "format": format } }),
            filename,
            bytes,
        )
        .await;
    let model = answer.data()["createModel"].clone();
    let mut inspection = model["currentVersion"]["inspection"].clone();
    inspection["modelId"] = model["id"].clone();
    inspection["versionId"] = model["currentVersion"]["id"].clone();
    inspection
}

fn dangerous(inspection: &Value) -> Vec<String> {
    inspection["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "DANGEROUS")
        .map(|f| {
            format!(
                "{}.{}",
                f["module"].as_str().unwrap(),
                f["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_scikit_learn_model_is_safe_and_its_estimator_is_named() {
    let app = spawn_app().await;
    let token = app.register("sklearner").await;
    let report = inspect(
        &app,
        &token,
        "forest",
        "JOBLIB",
        "forest.joblib",
        random_forest(),
    )
    .await;
    assert_eq!(report["status"], "SAFE", "{report}");
    assert_eq!(report["inspector"], "pickle");
    assert_eq!(
        report["estimatorClass"],
        "sklearn.ensemble._forest.RandomForestClassifier"
    );
    assert_eq!(report["sklearnVersion"], "1.9.1");
    assert_eq!(report["frameworkHints"], json!(["scikit-learn"]));
    assert!(
        report["metadata"]["inline_arrays"].as_u64().unwrap() > 0,
        "joblib's numpy arrays were skipped over"
    );
    assert!(dangerous(&report).is_empty());
}

/// Replaces every occurrence of `from` in `bytes` with `to`, of the same length (so that the
/// pickles' length prefixes and frames stay right); panics if there is none.
fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut found = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
            found += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    assert!(
        found > 0,
        "the fixture has no `{}`",
        String::from_utf8_lossy(from)
    );
    out
}

/// A malicious fixture whose command touches `marker` instead: the same pickle opcodes, with
/// the command string swapped for one of the same length. A zip (the `.pth`) is rebuilt so
/// that its entries' checksums match their new bytes.
fn armed(name: &str, command: &[u8]) -> Vec<u8> {
    let original = fixture(name);
    if !name.ends_with(".pth") {
        return replace_all(&original, FIXTURE_COMMAND, command);
    }
    use std::io::{Read, Write};
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(original)).unwrap();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut patched = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if bytes
            .windows(FIXTURE_COMMAND.len())
            .any(|w| w == FIXTURE_COMMAND)
        {
            bytes = replace_all(&bytes, FIXTURE_COMMAND, command);
            patched += 1;
        }
        writer
            .start_file(entry.name().unwrap().into_owned(), options)
            .unwrap();
        writer.write_all(&bytes).unwrap();
    }
    assert_eq!(patched, 1, "{name}: the pickle inside");
    writer.finish().unwrap().into_inner()
}

#[tokio::test]
async fn malicious_pickles_are_unsafe_in_every_disguise_and_never_run() {
    // This test's own marker: what the payloads' `os.system("touch …")` creates when Python
    // unpickles them (checked by hand: `python3 -c 'import pickle,sys;
    // pickle.load(open(sys.argv[1], "rb"))' evil_reduce.pkl` makes it). The command is padded
    // with spaces to the fixtures' length, so the path must be short: a directory in /tmp.
    let dir = tempfile::Builder::new()
        .prefix("mh")
        .tempdir_in("/tmp")
        .unwrap();
    let marker = dir.path().join("ran");
    let mut command = format!("touch {}", marker.display()).into_bytes();
    assert!(
        command.len() <= FIXTURE_COMMAND.len(),
        "{}",
        marker.display()
    );
    command.resize(FIXTURE_COMMAND.len(), b' ');
    // The directory is writable: were a payload run, the marker would appear.
    std::fs::write(&marker, b"probe").unwrap();
    std::fs::remove_file(&marker).unwrap();

    let app = spawn_app().await;
    let token = app.register("mallory").await;
    let cases = [
        ("evil_reduce.pkl", "PICKLE", vec!["posix.system"]),
        ("evil_memo.pkl", "PICKLE", vec!["posix.system"]),
        (
            "evil_dynamic.pkl",
            "PICKLE",
            vec!["<dynamic>.STACK_GLOBAL with a computed module or name"],
        ),
        ("evil.pth", "PTH", vec!["posix.system"]),
        ("evil.joblib", "JOBLIB", vec!["posix.system"]),
    ];
    let mut stored = Vec::new();
    for (file, format, expected) in cases {
        let payload = armed(file, &command);
        let report = inspect(&app, &token, file, format, file, payload.clone()).await;
        assert_eq!(report["status"], "UNSAFE", "{file}: {report}");
        let found = dangerous(&report);
        for e in &expected {
            let e = e.replace(
                "posix.",
                if found.iter().any(|f| f.starts_with("os.")) {
                    "os."
                } else {
                    "posix."
                },
            );
            assert!(found.contains(&e), "{file}: expected {e} in {found:?}");
        }
        stored.push((
            file,
            report["versionId"].as_str().unwrap().to_owned(),
            payload,
        ));
    }
    // The same bytes declared as OTHER are still inspected.
    let disguised_payload = armed("evil_reduce.pkl", &command);
    let disguised = inspect(
        &app,
        &token,
        "disguised",
        "OTHER",
        "notes.bin",
        disguised_payload.clone(),
    )
    .await;
    assert_eq!(disguised["status"], "UNSAFE");
    stored.push((
        "notes.bin",
        disguised["versionId"].as_str().unwrap().to_owned(),
        disguised_payload,
    ));
    // Held: a plain download is refused; with the risk accepted the very bytes come back.
    for (file, version, payload) in &stored {
        let url = format!("{}/files/{version}", app.base);
        let refused = app
            .client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{file}");
        let accepted = app
            .client
            .get(format!("{url}?acceptRisk=true"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 200, "{file}");
        assert!(accepted.bytes().await.unwrap() == *payload, "{file}");
    }
    // Inspecting every stored file again reads them once more, and keeps every verdict.
    let again = modelhub::services::inspection::reinspect(&app.state, true)
        .await
        .map_err(|e| e.message())
        .unwrap();
    assert_eq!((again.inspected, again.changed), (stored.len(), 0));
    assert!(
        !marker.exists(),
        "an inspected file was executed: {} exists",
        marker.display()
    );
}

#[tokio::test]
async fn tensor_formats_report_their_contents() {
    let app = spawn_app().await;
    let token = app.register("tensors").await;

    let st = inspect(
        &app,
        &token,
        "st",
        "SAFETENSORS",
        "w.safetensors",
        safetensors(1000),
    )
    .await;
    assert_eq!(st["status"], "SAFE", "{st}");
    assert_eq!(st["parameterCount"], 1000);
    assert_eq!(st["tensorCount"], 1);
    assert_eq!(st["dtypes"], json!(["F32"]));

    let gguf = inspect(&app, &token, "gguf", "GGUF", "m.gguf", gguf_file()).await;
    assert_eq!(gguf["status"], "SAFE", "{gguf}");
    assert_eq!(gguf["parameterCount"], 48);
    assert_eq!(gguf["tensorCount"], 2);
    assert_eq!(gguf["dtypes"], json!(["F32", "Q4_K"]));
    assert_eq!(gguf["metadata"]["architecture"], "llama");
    assert_eq!(gguf["metadata"]["context_length"], 4096);
    assert_eq!(gguf["metadata"]["file_type"], 15);
    assert_eq!(
        gguf["metadata"]["kv"]["tokenizer.ggml.tokens"]["length"],
        20
    );

    let onnx = inspect(
        &app,
        &token,
        "onnx",
        "ONNX",
        "tiny.onnx",
        fixture("tiny.onnx"),
    )
    .await;
    assert_eq!(onnx["status"], "SAFE", "{onnx}");
    assert_eq!(
        onnx["inputs"],
        json!([{ "name": "x", "elementType": "FLOAT", "shape": ["batch", "4"] }])
    );
    assert_eq!(
        onnx["outputs"],
        json!([{ "name": "y", "elementType": "FLOAT", "shape": ["batch", "3"] }])
    );
    assert_eq!(onnx["parameterCount"], 15);
    assert_eq!(onnx["metadata"]["opset"], 17);
    assert_eq!(onnx["metadata"]["producer"], "modelhub-fixtures");

    let keras = inspect(
        &app,
        &token,
        "keras",
        "H5",
        "model.h5",
        fixture("keras_model.h5"),
    )
    .await;
    assert_eq!(keras["status"], "SAFE", "{keras}");
    assert_eq!(keras["metadata"]["keras_version"], "2.15.0");
    assert_eq!(keras["metadata"]["backend"], "tensorflow");
    assert_eq!(keras["metadata"]["model_class"], "Sequential");
    assert_eq!(keras["metadata"]["layer_count"], 2);
}

/// A GGUF v3 file: four metadata keys and two tensors (4×8 F32, 16 Q4_K).
fn gguf_file() -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(2u64.to_le_bytes());
    out.extend(4u64.to_le_bytes());
    string(&mut out, "general.architecture");
    out.extend(8u32.to_le_bytes());
    string(&mut out, "llama");
    string(&mut out, "llama.context_length");
    out.extend(4u32.to_le_bytes());
    out.extend(4096u32.to_le_bytes());
    string(&mut out, "general.file_type");
    out.extend(4u32.to_le_bytes());
    out.extend(15u32.to_le_bytes());
    string(&mut out, "tokenizer.ggml.tokens");
    out.extend(9u32.to_le_bytes());
    out.extend(8u32.to_le_bytes());
    out.extend(20u64.to_le_bytes());
    for i in 0..20 {
        string(&mut out, &format!("tok{i}"));
    }
    for (name, dims, kind) in [("a", vec![4u64, 8], 0u32), ("b", vec![16], 12)] {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(kind.to_le_bytes());
        out.extend(0u64.to_le_bytes());
    }
    out.extend([0u8; 64]);
    out
}

#[tokio::test]
async fn truncated_and_corrupt_files_are_errors_and_the_server_stays_up() {
    let app = spawn_app().await;
    let token = app.register("broken").await;
    let forest = random_forest();
    let gguf = gguf_file();
    let mut bad_st = safetensors(100);
    bad_st.truncate(bad_st.len() - 40);
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend([0x13u8; 200]);
    let cases: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        (
            "half a joblib",
            "JOBLIB",
            "m.joblib",
            forest[..forest.len() / 2].to_vec(),
        ),
        ("half a gguf", "GGUF", "m.gguf", gguf[..60].to_vec()),
        ("short safetensors", "SAFETENSORS", "m.safetensors", bad_st),
        ("garbage onnx", "ONNX", "m.onnx", vec![0xff; 300]),
        ("broken zip", "PTH", "m.pth", zip),
        (
            "bad opcode",
            "PICKLE",
            "m.pkl",
            b"\x80\x04\xff\xff.".to_vec(),
        ),
    ];
    for (name, format, filename, bytes) in cases {
        let report = inspect(&app, &token, name, format, filename, bytes).await;
        assert_eq!(report["status"], "ERROR", "{name}: {report}");
        assert!(
            report["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}"
        );
    }
    app.assert_serving().await;
}

#[tokio::test]
async fn unsafe_versions_cannot_be_published_and_need_accept_risk() {
    let app = spawn_app().await;
    let owner = app.register("risky").await;
    let admin = app.admin("gate").await;
    let report = inspect(
        &app,
        &owner,
        "risky",
        "PICKLE",
        "m.pkl",
        fixture("evil_reduce.pkl"),
    )
    .await;
    let (model_id, version_id) = (
        report["modelId"].as_str().unwrap(),
        report["versionId"].as_str().unwrap(),
    );
    let request = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
            json!({ "id": model_id }),
        )
        .await;
    assert_eq!(request.code(), "CONFLICT");
    assert!(
        request.message().contains("system"),
        "{}",
        request.message()
    );

    let url = format!("{}/files/{version_id}", app.base);
    let refused = app
        .client
        .get(&url)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let accepted = app
        .client
        .get(format!("{url}?acceptRisk=true"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);

    // A safe model is found by safeOnly; the unsafe one is not.
    inspect(
        &app,
        &owner,
        "clean",
        "SAFETENSORS",
        "w.safetensors",
        safetensors(4),
    )
    .await;
    let safe = app
        .gql(
            Some(&owner),
            "{ models(filter: { safeOnly: true }) { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        safe.data()["models"]["edges"],
        json!([{ "node": { "name": "clean" } }])
    );
    // A public model cannot take an unsafe version.
    let clean = inspect(
        &app,
        &owner,
        "public",
        "SAFETENSORS",
        "w.safetensors",
        safetensors(8),
    )
    .await;
    let clean_id = clean["modelId"].as_str().unwrap();
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
        json!({ "id": clean_id }),
    )
    .await
    .data();
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { approveModel(modelId: $id) { id } }",
        json!({ "id": clean_id }),
    )
    .await
    .data();
    let refused = app
        .create_version(
            &owner,
            clean_id,
            json!({ "version": "2.0.0", "format": "PICKLE" }),
            "m.pkl",
            fixture("evil_reduce.pkl"),
        )
        .await;
    assert_eq!(refused.code(), "CONFLICT");
    let dashboard = app
        .gql(
            Some(&admin),
            "{ adminDashboard { versionsByInspection { status count } } }",
            json!({}),
        )
        .await;
    let mut counts = dashboard.data()["adminDashboard"]["versionsByInspection"]
        .as_array()
        .unwrap()
        .clone();
    counts.sort_by_key(|c| c["status"].as_str().unwrap().to_owned());
    assert_eq!(
        counts,
        vec![
            json!({ "status": "SAFE", "count": 2 }),
            json!({ "status": "UNSAFE", "count": 1 })
        ]
    );
}

#[tokio::test]
async fn the_reject_policy_refuses_unsafe_uploads_and_keeps_nothing() {
    let app = spawn_with(Options {
        unsafe_uploads: modelhub::config::UnsafeUploads::Reject,
        ..Options::default()
    })
    .await;
    let token = app.register("strict").await;
    let answer = app
        .create_model(
            &token,
            json!({ "name": "evil", "framework": "x", "version": "1.0.0" }),
            "m.pkl",
            fixture("evil_reduce.pkl"),
        )
        .await;
    assert_eq!(answer.code(), "BAD_USER_INPUT");
    assert_eq!(answer.extensions()["field"], "file");
    assert_eq!(app.count_rows("models").await, 0);
    assert!(app.blob_files().is_empty());
}
