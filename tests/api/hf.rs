//! The Hugging Face protocol, spoken to the real client: `tests/hf/test_client.py` runs the
//! pinned `huggingface_hub` (`MODELHUB_TEST_HF_PYTHON`, a virtualenv `.ci/run` makes) against
//! this server with `HF_ENDPOINT` set, on models stored through GraphQL here.

use serde_json::json;

use crate::helpers::{
    Options, TestApp, fixture, safetensors, sha256_hex, spawn_app, spawn_with, test_hf_python,
    test_s3_bucket, transformers_folder, write_folder,
};

const CREATE: &str = "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { id slug currentVersion { commitId } } }";

#[tokio::test]
async fn the_hugging_face_client_reads_what_graphql_stored() {
    let Some(python) = test_hf_python("the_hugging_face_client_reads_what_graphql_stored") else {
        return;
    };
    let app = spawn_app().await;
    let owner = app.register("hf-owner").await;
    let other = app.register("hf-other").await;
    let admin = app.admin("hf-admin").await;
    // The client is given API tokens that may only read, as a script's HF_TOKEN would be.
    let owner_read = api_token(&app, &owner, "READ").await;
    let other_read = api_token(&app, &other, "READ").await;

    // The owner's models, each created through GraphQL; `publish` makes one public.
    let create = async |name: &str, version: &str, files: &[(String, Vec<u8>)], publish: bool| {
        let created = app
            .upload_files(
                Some(&owner),
                CREATE,
                json!({ "input": { "name": name, "framework": "transformers", "version": version } }),
                files,
            )
            .await;
        let model = created.data()["createModel"].clone();
        if publish {
            app.publish(&owner, &admin, model["id"].as_str().unwrap())
                .await;
        }
        model
    };
    let folder = transformers_folder(200);
    let public = create("Tiny Folder", "v1.0.0", &folder, true).await;
    assert_eq!(public["slug"], "Tiny-Folder");

    let secret = [("config.json".to_owned(), br#"{"secret": true}"#.to_vec())];
    let secret_id = create("secret", "1.0.0", &secret, false).await["id"].clone();
    let second = vec![("config.json".to_owned(), br#"{"secret": 2}"#.to_vec())];
    app.upload_files(
        Some(&owner),
        "mutation($id: ID!, $input: CreateVersionInput!, $files: [FileUpload!]) { createModelVersion(modelId: $id, input: $input, files: $files) { id } }",
        json!({ "id": secret_id, "input": { "version": "2.0.0", "changelog": "second" } }),
        &second,
    )
    .await
    .data();
    let held = [("model.pkl".to_owned(), fixture("evil_reduce.pkl"))];
    create("held", "1.0.0", &held, false).await;

    // A file larger than the client's 10 MiB read size (it resumes only after a whole read),
    // inert data (it starts with no pickle opcode), for the resumed download.
    let big: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    create("big", "1.0.0", &[("big.bin".to_owned(), big.clone())], true).await;

    // A transformers folder (made by make_fixtures.py) for AutoConfig and AutoTokenizer.
    let bert: Vec<(String, Vec<u8>)> = ["config.json", "tokenizer.json", "tokenizer_config.json"]
        .iter()
        .map(|name| ((*name).to_owned(), fixture(&format!("bert_tiny/{name}"))))
        .collect();
    create("bert-tiny", "1.0.0", &bert, true).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let expected = dir.path().join("expected");
    write_folder(&expected, &folder);
    run_client_script(
        &python,
        "test_client.py",
        &app.base,
        dir.path(),
        &[
            ("MODELHUB_HF_OWNER_TOKEN", owner_read.as_str()),
            ("MODELHUB_HF_OTHER_TOKEN", other_read.as_str()),
            ("MODELHUB_HF_OWNER_SESSION", owner.as_str()),
            (
                "MODELHUB_HF_COMMIT",
                public["currentVersion"]["commitId"].as_str().unwrap(),
            ),
            ("MODELHUB_HF_EXPECTED", expected.to_str().unwrap()),
            (
                "MODELHUB_HF_BIG",
                dir.path().join("big.bin").to_str().unwrap(),
            ),
        ],
    )
    .await;
}

/// Runs one of `tests/hf/`'s unittest scripts with the client pointed at `base` (no Xet, no
/// token of its own, its cache and work files under `work`) and fails with its report.
async fn run_client_script(
    python: &str,
    script: &str,
    base: &str,
    work: &std::path::Path,
    vars: &[(&str, &str)],
) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hf")
        .join(script);
    let mut command = std::process::Command::new(python);
    command
        .arg(script)
        .env("HF_ENDPOINT", base)
        .env("HF_HOME", work.join("hf-home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env_remove("HF_TOKEN")
        .env("MODELHUB_HF_WORK", work);
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the client tests failed:\n{report}"
    );
    assert!(report.contains("OK"), "{report}");
}

/// An API token of the session's account with these scopes.
async fn api_token(app: &TestApp, session: &str, scopes: &str) -> String {
    let created = app
        .gql(
            Some(session),
            &format!("mutation {{ createApiToken(input: {{ name: \"hf\", scopes: [{scopes}] }}) {{ token }} }}"),
            json!({}),
        )
        .await;
    created.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_hugging_face_client_publishes_versions() {
    let Some(python) = test_hf_python("the_hugging_face_client_publishes_versions") else {
        return;
    };
    // Room for the 100 MiB file sent in parts.
    let app = spawn_with(Options {
        max_upload_bytes: 256 * 1024 * 1024,
        ..Options::default()
    })
    .await;
    let writer = app.register("hf-writer").await;
    let intruder = app.register("hf-intruder").await;
    let write = api_token(&app, &writer, "READ, WRITE").await;
    let read = api_token(&app, &writer, "READ").await;
    let intruder = api_token(&app, &intruder, "READ, WRITE").await;
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    run_client_script(
        &python,
        "test_upload.py",
        &app.base,
        dir.path(),
        &[
            ("MODELHUB_HF_WRITE_TOKEN", write.as_str()),
            ("MODELHUB_HF_READ_TOKEN", read.as_str()),
            ("MODELHUB_HF_SESSION", writer.as_str()),
            ("MODELHUB_HF_INTRUDER_TOKEN", intruder.as_str()),
            ("MODELHUB_HF_FIXTURES", fixtures.to_str().unwrap()),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_hugging_face_client_downloads_from_the_store_by_presigned_redirects() {
    let test = "the_hugging_face_client_downloads_from_the_store_by_presigned_redirects";
    let (Some(python), Some(_)) = (test_hf_python(test), test_s3_bucket(test)) else {
        return;
    };
    let app = spawn_with(Options {
        s3: true,
        s3_options: modelhub::config::S3Options {
            max_single_copy: 5 * 1024 * 1024 * 1024,
            presigned_downloads: true,
        },
        ..Options::default()
    })
    .await;
    let owner = app.register("hf-far").await;
    let weights = safetensors(256 * 1024);
    app.create_model(
        &owner,
        json!({ "name": "far", "version": "1.0.0", "framework": "PYTORCH" }),
        "w.safetensors",
        weights.clone(),
    )
    .await
    .data();
    let read = api_token(&app, &owner, "READ").await;
    let dir = tempfile::tempdir().unwrap();
    run_client_script(
        &python,
        "test_presigned.py",
        &app.base,
        dir.path(),
        &[
            ("MODELHUB_HF_TOKEN", read.as_str()),
            ("MODELHUB_HF_REPO", "hf-far/far"),
            ("MODELHUB_HF_SHA256", sha256_hex(&weights).as_str()),
        ],
    )
    .await;
}

#[tokio::test]
async fn repository_names_are_unique_per_owner_and_kept_on_rename() {
    let app = spawn_app().await;
    let alice = app.register("slug-alice").await;
    let bob = app.register("slug-bob").await;
    let one = vec![("config.json".to_owned(), b"{}".to_vec())];
    let mut slugs = Vec::new();
    for (token, name) in [
        (&alice, "a b"),
        (&alice, "A-B"),
        (&alice, "a..b"),
        (&bob, "a b"),
    ] {
        let created = app
            .upload_files(
                Some(token),
                CREATE,
                json!({ "input": { "name": name, "framework": "x", "version": "1.0.0" } }),
                &one,
            )
            .await;
        slugs.push(created.data()["createModel"].clone());
    }
    let names: Vec<&str> = slugs.iter().map(|m| m["slug"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-b", "A-B-2", "a.b", "a-b"]);
    let renamed = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) { updateModel(id: $id, input: { name: \"something else\" }) { name slug } }",
            json!({ "id": slugs[0]["id"] }),
        )
        .await;
    assert_eq!(
        renamed.data()["updateModel"],
        json!({ "name": "something else", "slug": "a-b" })
    );
    // The database itself refuses two of an owner's slugs that differ only in case (two
    // uploads racing past the check above would otherwise make `alice/a-b` ambiguous).
    use sea_orm::ConnectionTrait;
    let clash = app
        .state
        .db
        .execute_unprepared("UPDATE models SET slug = 'a-B' WHERE slug = 'a.b'")
        .await;
    assert!(
        matches!(
            clash.as_ref().map_err(sea_orm::DbErr::sql_err),
            Err(Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
        ),
        "{clash:?}"
    );
}

#[tokio::test]
async fn a_tree_longer_than_a_page_continues_at_its_next_link() {
    let app = spawn_app().await;
    let owner = app.register("tree-owner").await;
    let files: Vec<(String, Vec<u8>)> = (0..1001)
        .map(|i| (format!("f{i:04}.txt"), format!("{i}\n").into_bytes()))
        .collect();
    app.upload_files(
        Some(&owner),
        CREATE,
        json!({ "input": { "name": "wide", "framework": "x", "version": "1.0.0" } }),
        &files,
    )
    .await
    .data();
    let mut url = format!(
        "{}/api/models/tree-owner/wide/tree/main?recursive=true",
        app.base
    );
    let mut paths = Vec::new();
    let mut pages = 0;
    loop {
        let response = app
            .client
            .get(&url)
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let next = response
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let page: Vec<serde_json::Value> = response.json().await.unwrap();
        paths.extend(page.iter().map(|e| e["path"].as_str().unwrap().to_owned()));
        pages += 1;
        match next {
            Some(link) => {
                url = link
                    .trim_start_matches('<')
                    .split_once('>')
                    .unwrap()
                    .0
                    .to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    let expected: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(paths, expected);
}
