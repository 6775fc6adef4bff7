//! Versions of several files: uploaded in one request, listed and fetched file by file, with
//! a digest over their manifest, path rules, each file's own verdict, shared blobs, and the
//! migration that made every earlier version a one-file version.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    Folder, Options, TestApp, digest_of, fixture, safetensors, sha256_hex, spawn_app, spawn_with,
    transformers_folder, write_folder,
};

const CREATE: &str = "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { id currentVersion { id } } }";
const ADD: &str = "mutation($id: ID!, $input: CreateVersionInput!, $files: [FileUpload!]) { createModelVersion(modelId: $id, input: $input, files: $files) { id digest fileCount } }";
const VERSION: &str = "query($id: ID!) { modelVersion(id: $id) { fileCount digest sha256 sizeBytes format held inspection { status } } }";
const FILES: &str = "query($id: ID!, $after: String, $prefix: String) { modelVersion(id: $id) { files(first: 100, after: $after, prefix: $prefix) { totalCount pageInfo { hasNextPage endCursor } edges { node { path sizeBytes sha256 } } } } }";

fn input(name: &str) -> Value {
    json!({ "name": name, "framework": "transformers", "version": "v1.0.0" })
}

async fn create(app: &TestApp, token: &str, name: &str, files: &[(String, Vec<u8>)]) -> Value {
    let answer = app
        .upload_files(Some(token), CREATE, json!({ "input": input(name) }), files)
        .await;
    answer.data()["createModel"].clone()
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_version_of_many_files_is_uploaded_in_one_request_and_served_file_by_file() {
    let app = spawn_app().await;
    let owner = app.register("folders").await;
    let files = transformers_folder(200);
    let created = create(&app, &owner, "bert-like", &files).await;
    let version_id = created["currentVersion"]["id"].as_str().unwrap().to_owned();

    let answer = app
        .gql(Some(&owner), VERSION, json!({ "id": version_id }))
        .await;
    let version = &answer.data()["modelVersion"];
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(version["fileCount"], 200);
    assert_eq!(version["digest"], digest_of(&files));
    assert_eq!(version["sha256"], version["digest"]);
    assert_eq!(version["sizeBytes"], total as u64);
    assert_eq!(version["format"], "SAFETENSORS");
    assert_eq!(version["inspection"]["status"], "SAFE", "{version}");
    assert_eq!(version["held"], false);

    // Two pages of 100, in byte order of their paths.
    let mut listed = Vec::new();
    let mut after = Value::Null;
    for page_number in 0..2 {
        let answer = app
            .gql(
                Some(&owner),
                FILES,
                json!({ "id": version_id, "after": after }),
            )
            .await;
        let page = &answer.data()["modelVersion"]["files"];
        assert_eq!(page["totalCount"], 200);
        assert_eq!(page["pageInfo"]["hasNextPage"], page_number == 0);
        for edge in page["edges"].as_array().unwrap() {
            listed.push(edge["node"]["path"].as_str().unwrap().to_owned());
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let mut expected: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let answer = app
        .gql(
            Some(&owner),
            FILES,
            json!({ "id": version_id, "prefix": "a/b/" }),
        )
        .await;
    let page = &answer.data()["modelVersion"]["files"];
    let in_ab = files.iter().filter(|(p, _)| p.starts_with("a/b/")).count();
    assert_eq!(page["totalCount"], in_ab);
    assert_eq!(page["edges"].as_array().unwrap().len(), in_ab);

    // One file: its own inspection, bytes, ETag, Range and signed link.
    let answer = app
        .gql(
            Some(&owner),
            "query($id: ID!) { modelVersion(id: $id) { file(path: \"config.json\") { sha256 format downloadUrl inspection { status inspector } } missing: file(path: \"nope.json\") { path } } }",
            json!({ "id": version_id }),
        )
        .await;
    let file = &answer.data()["modelVersion"]["file"];
    assert_eq!(file["inspection"]["inspector"], "text");
    assert_eq!(file["inspection"]["status"], "SAFE");
    assert_eq!(file["format"], "OTHER");
    assert!(answer.data()["modelVersion"]["missing"].is_null());
    let (path, bytes) = files.iter().find(|(p, _)| p == "a/b/004.json").unwrap();
    let response = get(&app, Some(&owner), &format!("/files/{version_id}/{path}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", sha256_hex(bytes))
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let ranged = app
        .client
        .get(format!("{}/files/{version_id}/{path}", app.base))
        .bearer_auth(&owner)
        .header("range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &bytes[1..4]);
    let link = file["downloadUrl"].as_str().unwrap();
    assert!(
        link.contains(&format!("/files/{version_id}/config.json?token=")),
        "{link}"
    );
    let linked = app.client.get(link).send().await.unwrap();
    assert_eq!(linked.status(), 200, "a signed link works without a header");
    assert_eq!(
        linked.bytes().await.unwrap().as_ref(),
        files[0].1.as_slice()
    );
    // A link for one file opens that file only: not another, nor the whole version.
    let token = link.split("token=").nth(1).unwrap();
    for other in [
        format!("/files/{version_id}/README.md?token={token}"),
        format!("/files/{version_id}?format=tar&token={token}"),
    ] {
        let refused = get(&app, None, &other).await;
        assert_eq!(refused.status(), 403, "{other}");
    }
    let absent = get(
        &app,
        Some(&owner),
        &format!("/files/{version_id}/nope.json"),
    )
    .await;
    assert_eq!(absent.status(), 404);
    let whole = get(&app, Some(&owner), &format!("/files/{version_id}")).await;
    assert_eq!(whole.status(), 409, "several files are fetched one by one");

    // The same files in another order: the same digest, and no new blob.
    let blobs = app.blob_files().len();
    let mut reversed = files.clone();
    reversed.reverse();
    let model_id = created["id"].as_str().unwrap();
    let second = app
        .upload_files(
            Some(&owner),
            ADD,
            json!({ "id": model_id, "input": { "version": "v1.1.0" } }),
            &reversed,
        )
        .await;
    assert_eq!(
        second.data()["createModelVersion"]["digest"],
        digest_of(&files)
    );
    assert_eq!(app.blob_files().len(), blobs);
}

#[tokio::test]
async fn every_path_rule_is_refused_naming_the_path_and_nothing_is_stored() {
    let app = spawn_with(Options {
        max_files_per_version: 4,
        ..Options::default()
    })
    .await;
    let owner = app.register("paths").await;
    let one = |path: &str| vec![(path.to_owned(), b"{}".to_vec())];
    let long = format!("{}.json", "x".repeat(256));
    let cases: Vec<(Folder, &str)> = vec![
        (one("../escape.json"), "../escape.json"),
        (one("/abs.json"), "/abs.json"),
        (one("a//b.json"), "a//b.json"),
        (one("a\\b.json"), "a\\\\b.json"),
        (one("a/./b.json"), "a/./b.json"),
        (one("a/.."), "a/.."),
        (one("bell\u{7}.json"), "bell\\u{7}.json"),
        (one(""), "``"),
        (one(&long), "xxxxxxxxxx"),
        (
            vec![
                ("Config.json".into(), b"{}".to_vec()),
                ("config.JSON".into(), b"{}".to_vec()),
            ],
            "config.JSON",
        ),
        (
            vec![
                ("a".into(), b"{}".to_vec()),
                ("a/b.json".into(), b"{}".to_vec()),
            ],
            "`a`",
        ),
        (
            (0..5)
                .map(|i| (format!("{i}.json"), b"{}".to_vec()))
                .collect(),
            "at most 4",
        ),
    ];
    for (files, named) in cases {
        let answer = app
            .upload_files(Some(&owner), CREATE, json!({ "input": input("p") }), &files)
            .await;
        assert_eq!(
            answer.code(),
            "BAD_USER_INPUT",
            "{files:?}: {:?}",
            answer.body
        );
        assert!(
            answer.message().contains(named),
            "{files:?}: `{}` should name {named}",
            answer.message()
        );
    }
    assert_eq!(app.count_rows("models").await, 0);
    assert_eq!(app.count_rows("version_files").await, 0);
    app.assert_serving().await;
}

#[tokio::test]
async fn each_file_has_its_own_verdict_and_the_version_the_worst() {
    let app = spawn_app().await;
    let owner = app.register("mixed").await;
    let stranger = app.register("stranger").await;
    let files = vec![
        ("config.json".to_owned(), b"{\"a\": 1}".to_vec()),
        (
            "evil.pkl".to_owned(),
            b"cos\nsystem\n(S'echo owned'\ntR.".to_vec(),
        ),
    ];
    let created = create(&app, &owner, "mixed", &files).await;
    let version_id = created["currentVersion"]["id"].as_str().unwrap().to_owned();
    let answer = app
        .gql(
            Some(&owner),
            "query($id: ID!) { modelVersion(id: $id) { held inspection { status } files { edges { node { path held inspection { status } } } } } }",
            json!({ "id": version_id }),
        )
        .await;
    let version = &answer.data()["modelVersion"];
    assert_eq!(version["inspection"]["status"], "UNSAFE");
    assert_eq!(version["held"], true);
    let verdicts: Vec<(&str, &str, bool)> = version["files"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["path"].as_str().unwrap(),
                e["node"]["inspection"]["status"].as_str().unwrap(),
                e["node"]["held"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [("config.json", "SAFE", false), ("evil.pkl", "UNSAFE", true)]
    );
    let cleared = get(
        &app,
        Some(&owner),
        &format!("/files/{version_id}/config.json"),
    )
    .await;
    assert_eq!(cleared.status(), 200);
    let held = get(&app, Some(&owner), &format!("/files/{version_id}/evil.pkl")).await;
    assert_eq!(held.status(), 403);
    let taken = get(
        &app,
        Some(&owner),
        &format!("/files/{version_id}/evil.pkl?acceptRisk=true"),
    )
    .await;
    assert_eq!(taken.status(), 200);
    assert_eq!(taken.bytes().await.unwrap().as_ref(), files[1].1.as_slice());
    let hidden = get(
        &app,
        Some(&stranger),
        &format!("/files/{version_id}/config.json"),
    )
    .await;
    assert_eq!(
        hidden.status(),
        404,
        "a private model's files do not exist for others"
    );
}

#[tokio::test]
async fn deleting_a_version_frees_only_the_blobs_no_other_version_uses() {
    let app = spawn_app().await;
    let owner = app.register("sharer").await;
    let shared = ("shared.json".to_owned(), b"{\"shared\": true}".to_vec());
    let own = ("own.json".to_owned(), b"{\"own\": 1}".to_vec());
    let other = ("other.json".to_owned(), b"{\"other\": 2}".to_vec());
    let created = create(&app, &owner, "sharing", &[shared.clone(), own.clone()]).await;
    let first = created["currentVersion"]["id"].as_str().unwrap().to_owned();
    app.upload_files(
        Some(&owner),
        ADD,
        json!({ "id": created["id"], "input": { "version": "v2.0.0" } }),
        &[shared.clone(), other.clone()],
    )
    .await
    .data();
    let stored = |app: &TestApp| {
        app.blob_files()
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
    };
    for (_, bytes) in [&shared, &own, &other] {
        assert!(stored(&app).contains(&sha256_hex(bytes)));
    }
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { deleteModelVersion(id: $id) }",
        json!({ "id": first }),
    )
    .await
    .data();
    let left = stored(&app);
    assert!(
        left.contains(&sha256_hex(&shared.1)),
        "still used by v2.0.0"
    );
    assert!(left.contains(&sha256_hex(&other.1)));
    assert!(
        !left.contains(&sha256_hex(&own.1)),
        "used by no version any more"
    );
    assert_eq!(app.count_rows("version_files").await, 2);
}

#[tokio::test]
async fn the_migration_makes_each_earlier_version_a_one_file_version() {
    use migration::MigratorTrait;
    let app = spawn_app().await;
    let owner = app.register("earlier").await;
    let bytes = safetensors(5);
    let created = app
        .create_model(
            &owner,
            json!({ "name": "old", "framework": "pytorch", "version": "v1.0.0" }),
            "weights.safetensors",
            bytes.clone(),
        )
        .await;
    let version_id = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A name that makes the same repository name: it gets the next free one.
    app.create_model(
        &owner,
        json!({ "name": "old!", "framework": "pytorch", "version": "v1.0.0" }),
        "other.safetensors",
        safetensors(6),
    )
    .await
    .data();
    // Back to the schema before versions had files (and drafts, repository names, commit ids,
    // LFS objects, leases, case-blind slugs, resumable uploads and their hash states, aliases,
    // lineage, and webhooks), then forward again.
    let url = secrecy::ExposeSecret::expose_secret(&app.state.config.database_url).to_owned();
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.unwrap();
    migration::Migrator::down(&db, Some(12)).await.unwrap();
    let tables: Vec<String> = {
        use sea_orm::ConnectionTrait;
        let backend = db.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE name = 'version_files'"
            }
            _ => "SELECT tablename AS name FROM pg_tables WHERE tablename = 'version_files'",
        };
        db.query_all_raw(sea_orm::Statement::from_string(backend, sql))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String>("", "name").unwrap())
            .collect()
    };
    assert!(tables.is_empty(), "down dropped the files");
    migration::Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();

    let answer = app
        .gql(
            Some(&owner),
            "query($id: ID!) { modelVersion(id: $id) { fileCount digest sha256 commitId model { slug } files { edges { node { path sha256 sizeBytes inspection { status } } } } } }",
            json!({ "id": version_id }),
        )
        .await;
    let version = &answer.data()["modelVersion"];
    let sha = sha256_hex(&bytes);
    let manifest = format!("{sha} {} weights.safetensors\n", bytes.len());
    assert_eq!(version["fileCount"], 1);
    assert_eq!(
        version["sha256"], sha,
        "the version's hash is its file's, as before"
    );
    assert_eq!(version["digest"], hex(&Sha256::digest(manifest.as_bytes())));
    let seed = format!(
        "modelhub commit\n{version_id}\n{}\n",
        version["digest"].as_str().unwrap()
    );
    assert_eq!(
        version["commitId"],
        hex(&Sha256::digest(seed.as_bytes()))[..40]
    );
    assert_eq!(version["model"]["slug"], "old");
    let slugs = app
        .gql(
            Some(&owner),
            "{ models(sort: {field: NAME, direction: ASC}) { edges { node { name slug } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        slugs.data()["models"]["edges"],
        json!([{ "node": { "name": "old", "slug": "old" } }, { "node": { "name": "old!", "slug": "old-2" } }])
    );
    let file = &version["files"]["edges"][0]["node"];
    assert_eq!(file["path"], "weights.safetensors");
    assert_eq!(file["sha256"], sha);
    assert_eq!(file["sizeBytes"], bytes.len());
    assert_eq!(file["inspection"]["status"], "SAFE");
    // The same URLs serve the same bytes.
    let whole = get(&app, Some(&owner), &format!("/files/{version_id}")).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let one = get(
        &app,
        Some(&owner),
        &format!("/files/{version_id}/weights.safetensors"),
    )
    .await;
    assert_eq!(one.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_version_downloads_as_one_tar_that_gnu_tar_writes_and_reads_alike() {
    let app = spawn_app().await;
    let owner = app.register("archiver").await;
    let long_dir = "nested/".repeat(17);
    let mut files = transformers_folder(12);
    files.push(("empty.txt".into(), Vec::new()));
    files.push(("exactly-a-block.json".into(), vec![b' '; 512]));
    files.push((format!("{long_dir}long.json"), b"{\"deep\": true}".to_vec()));
    assert!(
        files.last().unwrap().0.len() > 100,
        "needs ustar's prefix field"
    );
    let created = create(&app, &owner, "archive", &files).await;
    let version_id = created["currentVersion"]["id"].as_str().unwrap().to_owned();
    let answer = app
        .gql(
            Some(&owner),
            "query($id: ID!) { modelVersion(id: $id) { createdAt digest } }",
            json!({ "id": version_id }),
        )
        .await;
    let version = &answer.data()["modelVersion"];
    let mtime = chrono::DateTime::parse_from_rfc3339(version["createdAt"].as_str().unwrap())
        .unwrap()
        .timestamp();

    let response = get(
        &app,
        Some(&owner),
        &format!("/files/{version_id}?format=tar"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", version["digest"].as_str().unwrap())
    );
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let archive = response.bytes().await.unwrap().to_vec();
    assert_eq!(archive.len(), length, "Content-Length is known up front");

    // GNU tar, given the same files, writes the same bytes.
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &files);
    let mut paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort();
    let gnu = std::process::Command::new("tar")
        .args([
            "--format=ustar",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mode=0644",
            &format!("--mtime=@{mtime}"),
            "-b",
            "1",
            "--no-recursion",
            "-cf",
            "-",
            "-C",
        ])
        .arg(dir.path())
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        gnu.status.success(),
        "{}",
        String::from_utf8_lossy(&gnu.stderr)
    );
    assert!(gnu.stdout == archive, "the archive differs from GNU tar's");

    // `tar -tvf` lists it; a range resumes it.
    let listing = list_tar(&archive);
    assert_eq!(listing, paths);
    let resumed = app
        .client
        .get(format!("{}/files/{version_id}?format=tar", app.base))
        .bearer_auth(&owner)
        .header("range", "bytes=1500-")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 206);
    assert_eq!(resumed.bytes().await.unwrap().as_ref(), &archive[1500..]);
    let unknown = get(
        &app,
        Some(&owner),
        &format!("/files/{version_id}?format=zip"),
    )
    .await;
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn paths_too_long_for_ustar_get_pax_headers_that_tar_reads() {
    let app = spawn_app().await;
    let owner = app.register("pax").await;
    let long = format!("{}/{}.json", "d".repeat(200), "f".repeat(150));
    let files = vec![
        (long.clone(), b"{}".to_vec()),
        ("short.json".to_owned(), b"[]".to_vec()),
    ];
    let created = create(&app, &owner, "pax", &files).await;
    let version_id = created["currentVersion"]["id"].as_str().unwrap().to_owned();
    let response = get(
        &app,
        Some(&owner),
        &format!("/files/{version_id}?format=tar"),
    )
    .await;
    let archive = response.bytes().await.unwrap().to_vec();
    let mut expected = vec![long.as_str(), "short.json"];
    expected.sort();
    assert_eq!(list_tar(&archive), expected);
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("v.tar");
    std::fs::write(&tarball, &archive).unwrap();
    let extracted = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        extracted.status.success(),
        "{}",
        String::from_utf8_lossy(&extracted.stderr)
    );
    assert_eq!(std::fs::read(dir.path().join(&long)).unwrap(), b"{}");
}

/// The paths `tar -tvf` lists in an archive (checking each line is a 0644 file of 0/0).
fn list_tar(archive: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tar");
    std::fs::write(&path, archive).unwrap();
    let out = std::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvf")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            assert!(line.starts_with("-rw-r--r-- 0/0"), "{line}");
            line.split_whitespace().nth(5).unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_files_say_together_what_a_card_a_config_and_an_index_say() {
    let app = spawn_app().await;
    let owner = app.register("carded").await;
    let card = "---\nlicense: apache-2.0\ntags:\n  - bert\n  - fill-mask\npipeline_tag: fill-mask\nbase_model: google/bert\n---\n# Tiny BERT\n\nFor tests.\n";
    let index = json!({ "metadata": { "total_size": 64 }, "weight_map": { "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors" } });
    let mut files =
        vec![
        ("README.md".to_owned(), card.as_bytes().to_vec()),
        (
            "config.json".to_owned(),
            br#"{"architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 30522}"#
                .to_vec(),
        ),
        (
            "model.safetensors.index.json".to_owned(),
            index.to_string().into_bytes(),
        ),
        ("model-00001-of-00002.safetensors".to_owned(), safetensors(4)),
        ("model-00002-of-00002.safetensors".to_owned(), safetensors(6)),
    ];
    let created = app
        .upload_files(
            Some(&owner),
            "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { license taskType tags currentVersion { readme metadata inspection { status parameterCount metadata } } } }",
            json!({ "input": input("tiny-bert") }),
            &files,
        )
        .await;
    let model = &created.data()["createModel"];
    assert_eq!(model["license"], "apache-2.0", "a default from the card");
    assert_eq!(model["taskType"], "fill-mask");
    assert_eq!(model["tags"], json!(["bert", "fill-mask"]));
    let version = &model["currentVersion"];
    assert_eq!(version["readme"], card);
    assert_eq!(version["metadata"]["card"]["base_model"], "google/bert");
    let inspection = &version["inspection"];
    assert_eq!(inspection["status"], "SAFE", "{inspection}");
    assert_eq!(inspection["parameterCount"], 10);
    assert_eq!(inspection["metadata"]["config"]["model_type"], "bert");
    assert_eq!(
        inspection["metadata"]["safetensors_index"]["parameters"],
        10
    );

    // A shard the index names is missing: the version is held as ERROR, naming it.
    files.remove(4);
    let broken = app
        .upload_files(
            Some(&owner),
            "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { currentVersion { held inspection { status error } } } }",
            json!({ "input": input("broken-bert") }),
            &files,
        )
        .await;
    let version = &broken.data()["createModel"]["currentVersion"];
    assert_eq!(version["inspection"]["status"], "ERROR");
    assert_eq!(version["held"], true);
    assert!(
        version["inspection"]["error"]
            .as_str()
            .unwrap()
            .contains("model-00002-of-00002.safetensors"),
        "{version}"
    );
}

#[tokio::test]
async fn an_onnx_model_needs_its_external_data_in_the_version() {
    let app = spawn_app().await;
    let owner = app.register("exported").await;
    const QUERY: &str = "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { currentVersion { held inspection { status error metadata findings { name severity } } files(first: 10) { edges { node { path inspection { status metadata } } } } } } }";
    let weights = fixture("onnx_external/weights.bin");
    let upload = async |name: &str, files: Folder| {
        let answer = app
            .upload_files(Some(&owner), QUERY, json!({ "input": input(name) }), &files)
            .await;
        answer.data()["createModel"]["currentVersion"].clone()
    };
    let model = (
        "onnx/model.onnx".to_owned(),
        fixture("onnx_external/model.onnx"),
    );
    let whole = upload(
        "whole",
        vec![
            model.clone(),
            ("onnx/weights.bin".to_owned(), weights.clone()),
        ],
    )
    .await;
    assert_eq!(whole["inspection"]["status"], "SAFE", "{whole}");
    assert_eq!(
        whole["inspection"]["metadata"]["onnx_external_data"],
        json!([{ "model": "onnx/model.onnx", "files": 1, "bytes": weights.len() }])
    );
    let onnx = &whole["files"]["edges"][0]["node"];
    assert_eq!(onnx["path"], "onnx/model.onnx");
    assert_eq!(
        onnx["inspection"]["metadata"]["external_data"],
        json!([{ "location": "weights.bin", "bytes_needed": weights.len(), "tensors": 1 }])
    );

    // Without the weights, or with fewer bytes than the model reads, the version is held.
    let alone = upload("alone", vec![model.clone()]).await;
    assert_eq!(alone["inspection"]["status"], "ERROR");
    assert_eq!(alone["held"], true);
    assert_eq!(
        alone["inspection"]["error"],
        "onnx/model.onnx reads external data from onnx/weights.bin, which the version does not have"
    );
    let short = upload(
        "short",
        vec![
            model,
            (
                "onnx/weights.bin".to_owned(),
                weights[..weights.len() - 4].to_vec(),
            ),
        ],
    )
    .await;
    assert_eq!(short["inspection"]["status"], "ERROR");
    assert!(
        short["inspection"]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("reads {} bytes", weights.len())),
        "{short}"
    );

    // A model that reads its weights from outside its folder is UNSAFE on its own.
    let escape = upload(
        "escape",
        vec![
            (
                "escape.onnx".to_owned(),
                fixture("onnx_external/escape.onnx"),
            ),
            ("weights.bin".to_owned(), weights.clone()),
        ],
    )
    .await;
    assert_eq!(escape["inspection"]["status"], "UNSAFE", "{escape}");
    assert_eq!(
        escape["inspection"]["findings"],
        json!([{ "name": "../../../../etc/passwd", "severity": "DANGEROUS" }])
    );
    // So is one that hides the escape in a Constant node inside an If node's branch.
    let nested = upload(
        "nested",
        vec![
            (
                "nested.onnx".to_owned(),
                fixture("onnx_external/escape_nested.onnx"),
            ),
            ("weights.bin".to_owned(), weights),
        ],
    )
    .await;
    assert_eq!(nested["inspection"]["status"], "UNSAFE", "{nested}");
    assert_eq!(
        nested["inspection"]["findings"],
        json!([{ "name": "../../../../etc/hostname", "severity": "DANGEROUS" }])
    );
}
