//! The inspection gate on the real server: every file of the corpus
//! (`tests/fixtures/corpus/`) gets its verdict, and every held one is refused for download
//! without `acceptRisk`, refused publication and refused under `reject`; administrators
//! release UNKNOWN/ERROR versions with a reason (never UNSAFE ones); restoring a withdrawn
//! held version to a listed model is refused; re-inspection under new rules moves verdicts;
//! worst-case inputs for every reader are answered in bounded time with the server alive.

use std::{
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

use modelhub::config::UnsafeUploads;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, random_forest, spawn_with};

struct Case {
    file: String,
    format: String,
    expect: String,
    acceptable: Vec<String>,
    bytes: Vec<u8>,
}

impl Case {
    fn held(&self) -> bool {
        self.expect != "SAFE"
    }
}

fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest
        .into_iter()
        .map(|entry| {
            let file = entry["file"].as_str().unwrap().to_owned();
            let expect = entry["expect"].as_str().unwrap().to_owned();
            let mut acceptable = vec![expect.clone()];
            acceptable.extend(
                entry["also_acceptable"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap().to_owned()),
            );
            Case {
                bytes: std::fs::read(dir.join(&file)).unwrap(),
                format: entry["format"].as_str().unwrap().to_owned(),
                file,
                expect,
                acceptable,
            }
        })
        .collect()
}

const CREATE: &str = "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { id currentVersion { id held holdReason inspection { status clearance error } } } }";

async fn create(
    app: &TestApp,
    token: &str,
    name: &str,
    format: &str,
    file: &str,
    bytes: Vec<u8>,
) -> crate::helpers::Gql {
    app.upload(
        Some(token),
        CREATE,
        json!({ "input": { "name": name, "framework": "test", "version": "1.0.0", "format": format } }),
        file,
        bytes,
    )
    .await
}

async fn download(
    app: &TestApp,
    token: Option<&str>,
    version_id: &str,
    accept: bool,
) -> (u16, Vec<u8>) {
    let query = if accept { "?acceptRisk=true" } else { "" };
    let mut request = app
        .client
        .get(format!("{}/files/{version_id}{query}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn request_publication(app: &TestApp, token: &str, model_id: &str) -> crate::helpers::Gql {
    app.gql(
        Some(token),
        "mutation($id: ID!) { requestPublication(modelId: $id) { approvalStatus } }",
        json!({ "id": model_id }),
    )
    .await
}

#[tokio::test]
async fn every_corpus_file_gets_its_verdict_and_every_held_one_is_kept_back() {
    let app = spawn_with(Options::default()).await;
    let owner = app.register("corpus").await;
    let stranger = app.register("stranger").await;
    let cases = corpus();
    assert!(cases.iter().filter(|c| c.held()).count() >= 40);
    for (i, case) in cases.iter().enumerate() {
        let answer = create(
            &app,
            &owner,
            &format!("m{i}"),
            &case.format,
            &case.file,
            case.bytes.clone(),
        )
        .await;
        let model = &answer.data()["createModel"];
        let version = &model["currentVersion"];
        let status = version["inspection"]["status"].as_str().unwrap();
        assert!(
            case.acceptable.iter().any(|a| a == status),
            "{}: expected {:?}, got {status}: {version}",
            case.file,
            case.acceptable
        );
        let (model_id, version_id) = (
            model["id"].as_str().unwrap(),
            version["id"].as_str().unwrap(),
        );
        assert_eq!(
            version["held"],
            json!(case.held()),
            "{}: {version}",
            case.file
        );
        if case.held() {
            assert!(
                version["holdReason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty())
            );
            assert_eq!(
                download(&app, Some(&owner), version_id, false).await.0,
                403,
                "{}",
                case.file
            );
            // Not the owner: the model is private, so it does not exist for them.
            assert_eq!(
                download(&app, Some(&stranger), version_id, true).await.0,
                404,
                "{}",
                case.file
            );
            let (status, bytes) = download(&app, Some(&owner), version_id, true).await;
            assert_eq!(status, 200, "{}", case.file);
            assert!(bytes == case.bytes, "{}: the bytes changed", case.file);
            let publication = request_publication(&app, &owner, model_id).await;
            assert_eq!(
                publication.code(),
                "CONFLICT",
                "{}: {:?}",
                case.file,
                publication.body
            );
        } else {
            assert!(
                version["inspection"]["clearance"].as_str().is_some(),
                "{}: {version}",
                case.file
            );
            let (status, bytes) = download(&app, Some(&owner), version_id, false).await;
            assert_eq!(status, 200, "{}", case.file);
            assert!(bytes == case.bytes, "{}: the bytes changed", case.file);
            let publication = request_publication(&app, &owner, model_id).await;
            assert_eq!(
                publication.data()["requestPublication"]["approvalStatus"],
                "PENDING"
            );
        }
    }
    assert!(
        !Path::new("/tmp/modelhub-inspection-marker").exists(),
        "an inspected file was executed"
    );
}

#[tokio::test]
async fn the_reject_policy_refuses_every_held_file_and_keeps_nothing_of_it() {
    let app = spawn_with(Options {
        unsafe_uploads: UnsafeUploads::Reject,
        ..Options::default()
    })
    .await;
    let owner = app.register("strict").await;
    let cases = corpus();
    let mut stored = 0;
    for (i, case) in cases.iter().enumerate() {
        let answer = create(
            &app,
            &owner,
            &format!("m{i}"),
            &case.format,
            &case.file,
            case.bytes.clone(),
        )
        .await;
        if case.held() {
            assert_eq!(
                answer.code(),
                "BAD_USER_INPUT",
                "{}: {:?}",
                case.file,
                answer.body
            );
            assert!(
                answer.message().contains("holds this file"),
                "{}",
                answer.message()
            );
        } else {
            answer.data();
            stored += 1;
        }
    }
    assert_eq!(app.count_rows("model_versions").await, stored);
    assert_eq!(app.count_rows("models").await, stored);
}

#[tokio::test]
async fn administrators_release_unknown_versions_with_a_reason_but_never_unsafe_ones() {
    let app = spawn_with(Options::default()).await;
    let owner = app.register("owner").await;
    let admin = app.admin("root").await;
    let cases = corpus();
    let unknown = cases
        .iter()
        .find(|c| c.file == "numpy_not_real.pkl")
        .unwrap();
    let unsafe_case = cases.iter().find(|c| c.file == "reduce_p2.pkl").unwrap();
    let held = create(
        &app,
        &owner,
        "custom",
        &unknown.format,
        &unknown.file,
        unknown.bytes.clone(),
    )
    .await;
    let model_id = held.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let version_id = held.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let release = "mutation($id: ID!, $r: String!) { releaseModelVersion(id: $id, reason: $r) { held holdReason release { reason releasedBy { username } releasedAt } } }";
    // Only administrators, and only with a reason.
    let by_owner = app
        .gql(
            Some(&owner),
            release,
            json!({ "id": version_id, "r": "mine" }),
        )
        .await;
    assert_eq!(by_owner.code(), "FORBIDDEN");
    let no_reason = app
        .gql(
            Some(&admin),
            release,
            json!({ "id": version_id, "r": "  " }),
        )
        .await;
    assert_eq!(no_reason.code(), "BAD_USER_INPUT");
    let released = app
        .gql(
            Some(&admin),
            release,
            json!({ "id": version_id, "r": "numpy.NotARealClass is our fork's" }),
        )
        .await;
    let released = &released.data()["releaseModelVersion"];
    assert_eq!(released["held"], false);
    assert_eq!(released["holdReason"], Value::Null);
    assert_eq!(
        released["release"]["reason"],
        "numpy.NotARealClass is our fork's"
    );
    assert_eq!(released["release"]["releasedBy"]["username"], "root");
    // Released: it downloads without acceptRisk and the model can be published.
    assert_eq!(
        download(&app, Some(&owner), &version_id, false).await.0,
        200
    );
    assert_eq!(
        request_publication(&app, &owner, &model_id).await.data()["requestPublication"]["approvalStatus"],
        "PENDING"
    );
    let audit = app
        .gql(
            Some(&admin),
            "{ auditLog(first: 20) { edges { node { action reason } } } }",
            json!({}),
        )
        .await;
    assert!(
        audit.data()["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"]["action"] == "version_released"
                && e["node"]["reason"] == "numpy.NotARealClass is our fork's"),
        "{:?}",
        audit.body
    );
    // UNSAFE is never released.
    let evil = create(
        &app,
        &owner,
        "evil",
        &unsafe_case.format,
        &unsafe_case.file,
        unsafe_case.bytes.clone(),
    )
    .await;
    let evil_id = evil.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app
        .gql(
            Some(&admin),
            release,
            json!({ "id": evil_id, "r": "trust me" }),
        )
        .await;
    assert_eq!(refused.code(), "CONFLICT");
    assert_eq!(download(&app, Some(&owner), &evil_id, false).await.0, 403);
}

#[tokio::test]
async fn a_held_version_cannot_join_or_return_to_a_listed_model() {
    let app = spawn_with(Options::default()).await;
    let owner = app.register("owner").await;
    let admin = app.admin("root").await;
    let cases = corpus();
    let unknown = cases.iter().find(|c| c.file == "scipy_bogus.pkl").unwrap();
    let model = create(
        &app,
        &owner,
        "listed",
        "JOBLIB",
        "rf.joblib",
        random_forest(),
    )
    .await;
    let model_id = model.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A held 2.0.0 while the model is a draft, withdrawn before publication.
    let held = app
        .create_version(
            &owner,
            &model_id,
            json!({ "version": "2.0.0", "format": unknown.format }),
            &unknown.file,
            unknown.bytes.clone(),
        )
        .await;
    let held_id = held.data()["createModelVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let withdraw = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { withdrawModelVersion(id: $id, reason: \"held\") { id } }",
            json!({ "id": held_id }),
        )
        .await;
    withdraw.data();
    request_publication(&app, &owner, &model_id).await.data();
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { approveModel(modelId: $id) { approvalStatus } }",
        json!({ "id": model_id }),
    )
    .await
    .data();
    // Restoring it to the public model is refused, and nothing changes.
    let restore = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { restoreModelVersion(id: $id) { id } }",
            json!({ "id": held_id }),
        )
        .await;
    assert_eq!(restore.code(), "CONFLICT", "{:?}", restore.body);
    // A new held version is refused by the public model too; a cleared one is taken.
    let another = app
        .create_version(
            &owner,
            &model_id,
            json!({ "version": "3.0.0", "format": unknown.format }),
            &unknown.file,
            unknown.bytes.clone(),
        )
        .await;
    assert_eq!(another.code(), "CONFLICT", "{:?}", another.body);
    let current = app
        .gql(
            None,
            "query($id: ID!) { model(id: $id) { visibility currentVersion { version held } versions(first: 10) { edges { node { version } } } } }",
            json!({ "id": model_id }),
        )
        .await;
    assert_eq!(
        current.data()["model"],
        json!({ "visibility": "PUBLIC", "currentVersion": { "version": "1.0.0", "held": false }, "versions": { "edges": [{ "node": { "version": "2.0.0" } }, { "node": { "version": "1.0.0" } }] } })
    );
}

#[tokio::test]
async fn new_rules_inspect_stored_versions_again() {
    let app = spawn_with(Options {
        pickle_allow: vec!["numpy.NotARealClass".into()],
        response_cache_secs: 0,
        ..Options::default()
    })
    .await;
    let owner = app.register("owner").await;
    let admin = app.admin("root").await;
    let cases = corpus();
    let custom = cases
        .iter()
        .find(|c| c.file == "numpy_not_real.pkl")
        .unwrap();
    let created = create(
        &app,
        &owner,
        "custom",
        &custom.format,
        &custom.file,
        custom.bytes.clone(),
    )
    .await;
    let model_id = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let version = &created.data()["createModel"]["currentVersion"];
    assert_eq!(
        version["inspection"]["status"], "SAFE",
        "allowed by this deployment: {version}"
    );
    let version_id = version["id"].as_str().unwrap().to_owned();
    request_publication(&app, &owner, &model_id).await.data();
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { approveModel(modelId: $id) { approvalStatus } }",
        json!({ "id": model_id }),
    )
    .await
    .data();
    assert_eq!(download(&app, None, &version_id, false).await.0, 200);
    // Nothing is stale under the same rules.
    let same = modelhub::services::inspection::reinspect(&app.state, false)
        .await
        .unwrap();
    assert_eq!(same.inspected, 0);
    // The deployment drops its extension: the version is held from now on, for everyone
    // but the owner and administrators, and no longer current.
    let mut config = app.state.config.clone();
    config.pickle_rules = modelhub_inspect::Rules::default();
    let stricter = modelhub::state::AppState::new(
        config,
        app.state.db.clone(),
        app.state.blobs.clone(),
        modelhub::services::rate_limit::RateLimiter::in_memory(
            app.state.config.rate_limits.clone(),
        ),
    )
    .unwrap();
    let again = modelhub::services::inspection::reinspect(&stricter, false)
        .await
        .unwrap();
    assert_eq!((again.inspected, again.changed), (1, 1));
    assert_eq!(download(&app, None, &version_id, true).await.0, 403);
    assert_eq!(
        download(&app, Some(&owner), &version_id, false).await.0,
        403
    );
    assert_eq!(download(&app, Some(&owner), &version_id, true).await.0, 200);
    let model = app
        .gql(
            None,
            "query($id: ID!) { model(id: $id) { currentVersion { id } } modelVersion(id: \"VERSION\") { inspection { status } held } }"
                .replace("VERSION", &version_id)
                .as_str(),
            json!({ "id": model_id }),
        )
        .await;
    assert_eq!(
        model.data(),
        &json!({ "model": { "currentVersion": null }, "modelVersion": { "inspection": { "status": "UNKNOWN" }, "held": true } })
    );
    let all = modelhub::services::inspection::reinspect(&stricter, true)
        .await
        .unwrap();
    assert_eq!((all.inspected, all.changed), (1, 0));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// 16 MiB inputs built to make each reader do the most work it can be made to.
fn worst_cases() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    const SIZE: usize = 16 << 20;
    let mut cases = Vec::new();
    // A million TUPLE1s (the 1 MB file that used to overflow the stack), and sixteen million.
    for (name, n) in [("nested-1m.pkl", 1 << 20), ("nested-16m.pkl", SIZE - 4)] {
        let mut deep = b"\x80\x02N".to_vec();
        deep.extend(std::iter::repeat_n(0x85u8, n));
        deep.push(b'.');
        cases.push((name, "PICKLE", deep));
    }
    // Lists nested through the memo: every append copies a shared list.
    let mut memo = b"\x80\x04]\x94".to_vec();
    while memo.len() < SIZE {
        memo.extend_from_slice(b"h\x00Na\x94");
    }
    memo.push(b'.');
    cases.push(("memo.pkl", "PICKLE", memo));
    // A million distinct imports.
    let mut imports = Vec::new();
    let mut i = 0;
    while imports.len() < SIZE {
        imports.extend_from_slice(format!("cpkg{i}\nName{i}\n0").as_bytes());
        i += 1;
    }
    imports.extend_from_slice(b"N.");
    cases.push(("imports.pkl", "PICKLE", imports));
    // MARKs piled up, then popped one by one.
    let mut marks = vec![b'('; SIZE / 2];
    marks.extend(std::iter::repeat_n(b'1', SIZE / 2 - 1));
    marks.extend_from_slice(b"N.");
    cases.push(("marks.pkl", "PICKLE", marks));
    // A 16 MiB safetensors header of tiny tensors.
    let mut header = String::from("{");
    let mut t = 0;
    while header.len() < SIZE - 100 {
        header.push_str(&format!(
            "\"t{t}\":{{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[{t},{}]}},",
            t + 1
        ));
        t += 1;
    }
    header.push_str("\"__metadata__\":{}}");
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header.as_bytes());
    st.extend(std::iter::repeat_n(0u8, t));
    cases.push(("header.safetensors", "SAFETENSORS", st));
    // A GGUF file of a million metadata keys.
    let mut gguf = b"GGUF".to_vec();
    gguf.extend(3u32.to_le_bytes());
    gguf.extend(0u64.to_le_bytes());
    gguf.extend((1u64 << 20).to_le_bytes());
    for k in 0..(1u64 << 20) {
        let key = format!("k{k}");
        gguf.extend((key.len() as u64).to_le_bytes());
        gguf.extend(key.as_bytes());
        gguf.extend(4u32.to_le_bytes());
        gguf.extend(7u32.to_le_bytes());
    }
    cases.push(("kv.gguf", "GGUF", gguf));
    // An HDF5 signature, then Keras config starts that never close, and heap headers.
    let mut hdf5 = b"\x89HDF\r\n\x1a\n".to_vec();
    while hdf5.len() < SIZE {
        hdf5.extend_from_slice(b"{\"class_name\": {\"class_name\": GCOL\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f");
    }
    cases.push(("configs.h5", "H5", hdf5));
    // A .keras archive whose config nests deeper than any parser should follow.
    let mut nested = "[".repeat(SIZE / 2);
    nested.push_str(&"]".repeat(SIZE / 2));
    cases.push((
        "deep.keras",
        "KERAS",
        zip_of(&[("config.json", nested.as_bytes())]),
    ));
    // A zip of 100,000 empty pickles' worth of entries.
    let names: Vec<String> = (0..100_000).map(|n| format!("archive/{n}.pkl")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"N."[..])).collect();
    cases.push(("entries.pth", "PTH", zip_of(&entries)));
    // A compressed pickle that claims 1 TB of bytes and decompresses to gigabytes of zeros.
    let mut bomb = b"\x80\x04\x8e".to_vec();
    bomb.extend((1u64 << 40).to_le_bytes());
    bomb.extend(std::iter::repeat_n(0u8, 256 << 20));
    cases.push(("bomb.joblib", "JOBLIB", gzip(&bomb)));
    // An .npy with the largest header accepted.
    let mut npy = b"\x93NUMPY\x02\x00".to_vec();
    let npy_header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'pad': '{}'}}\n",
        " ".repeat((1 << 20) - 100)
    );
    npy.extend((npy_header.len() as u32).to_le_bytes());
    npy.extend_from_slice(npy_header.as_bytes());
    npy.extend(0f32.to_le_bytes());
    cases.push(("header.npy", "OTHER", npy));
    cases
}

#[tokio::test]
async fn worst_case_inputs_for_every_reader_are_answered_in_bounded_time() {
    let app = spawn_with(Options {
        inspection_secs: 5,
        ..Options::default()
    })
    .await;
    let owner = app.register("fuzzer").await;
    for (i, (file, format, bytes)) in worst_cases().into_iter().enumerate() {
        let started = Instant::now();
        let answer = create(&app, &owner, &format!("w{i}"), format, file, bytes).await;
        let took = started.elapsed();
        let status = &answer.data()["createModel"]["currentVersion"]["inspection"]["status"];
        assert!(status.is_string(), "{file}: {:?}", answer.body);
        assert!(took < Duration::from_secs(30), "{file} took {took:?}");
        eprintln!("{file}: {status} in {took:?}");
        app.assert_serving().await;
    }
}

#[tokio::test]
async fn a_signed_link_never_carries_the_right_to_take_a_held_file() {
    let app = spawn_with(Options::default()).await;
    let owner = app.register("owner").await;
    let cases = corpus();
    let evil = cases.iter().find(|c| c.file == "reduce_p2.pkl").unwrap();
    let created = create(
        &app,
        &owner,
        "evil",
        &evil.format,
        &evil.file,
        evil.bytes.clone(),
    )
    .await;
    let version_id = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = app.download_url(Some(&owner), &version_id).await;
    for url in [link.clone(), format!("{link}&acceptRisk=true")] {
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 403, "{url}");
    }
    // The owner, signed in, still can.
    assert_eq!(download(&app, Some(&owner), &version_id, true).await.0, 200);
}

#[tokio::test]
async fn the_allow_policy_serves_held_files_but_never_publishes_them() {
    let app = spawn_with(Options {
        unsafe_uploads: UnsafeUploads::Allow,
        ..Options::default()
    })
    .await;
    let owner = app.register("lenient").await;
    let cases = corpus();
    let evil = cases.iter().find(|c| c.file == "reduce_p2.pkl").unwrap();
    let created = create(
        &app,
        &owner,
        "evil",
        &evil.format,
        &evil.file,
        evil.bytes.clone(),
    )
    .await;
    let model = &created.data()["createModel"];
    assert_eq!(model["currentVersion"]["inspection"]["status"], "UNSAFE");
    assert_eq!(model["currentVersion"]["held"], true);
    let version_id = model["currentVersion"]["id"].as_str().unwrap();
    let (status, bytes) = download(&app, Some(&owner), version_id, false).await;
    assert_eq!(status, 200);
    assert!(bytes == evil.bytes);
    let publication = request_publication(&app, &owner, model["id"].as_str().unwrap()).await;
    assert_eq!(publication.code(), "CONFLICT");
}
