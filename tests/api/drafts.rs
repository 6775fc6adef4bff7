//! Version drafts: files gathered over many requests, reused by hash instead of sent again,
//! committed at once; abandoned, discarded and expired drafts leave nothing behind.

use serde_json::{Value, json};

use crate::helpers::{Folder, TestApp, digest_of, safetensors, sha256_hex, spawn_app};

const CREATE_MODEL: &str = "mutation($input: CreateModelInput!, $files: [FileUpload!]) { createModel(input: $input, files: $files) { id currentVersion { id digest } } }";
const DRAFT: &str = "mutation($id: ID!, $input: CreateVersionInput!) { createVersionDraft(modelId: $id, input: $input) { id expiresAt } }";
const ADD: &str = "mutation($id: ID!, $files: [FileUpload!], $reuse: [ReuseFile!]! = []) { addDraftFiles(draftId: $id, files: $files, reuse: $reuse) { id files { path } } }";
const COMMIT: &str =
    "mutation($id: ID!) { commitDraft(draftId: $id) { id version digest fileCount } }";
const VERSIONS: &str =
    "query($id: ID!) { model(id: $id) { versions { totalCount edges { node { version } } } } }";

/// `n` files in sub-folders, their bytes unique to `seed`.
fn folder(seed: &str, n: usize) -> Folder {
    let mut files = vec![("model.safetensors".to_owned(), safetensors(16 + seed.len()))];
    for i in 1..n {
        let path = match i % 2 {
            0 => format!("shards/{i:03}.json"),
            _ => format!("tokenizer/deep/{i:03}.txt"),
        };
        files.push((path, format!("{seed} file {i}\n").into_bytes()));
    }
    files
}

async fn model(app: &TestApp, token: &str, name: &str, files: &[(String, Vec<u8>)]) -> Value {
    app.upload_files(
        Some(token),
        CREATE_MODEL,
        json!({ "input": { "name": name, "framework": "transformers", "version": "v1.0.0" } }),
        files,
    )
    .await
    .data()["createModel"]
        .clone()
}

async fn draft(app: &TestApp, token: &str, model_id: &Value, version: &str) -> String {
    app.gql(
        Some(token),
        DRAFT,
        json!({ "id": model_id, "input": { "version": version } }),
    )
    .await
    .data()["createVersionDraft"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn version_count(app: &TestApp, token: &str, model_id: &Value) -> u64 {
    app.gql(Some(token), VERSIONS, json!({ "id": model_id }))
        .await
        .data()["model"]["versions"]["totalCount"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_draft_of_five_calls_commits_at_once_and_a_new_version_sends_only_what_changed() {
    let app = spawn_app().await;
    let owner = app.register("drafter").await;
    let files = folder("first", 200);
    // The same folder in one request, for its digest.
    let whole = model(&app, &owner, "in-one-request", &files).await;
    let target = model(&app, &owner, "in-parts", &files[..1]).await;
    let model_id = &target["id"];

    let draft_id = draft(&app, &owner, model_id, "v2.0.0").await;
    for part in files.chunks(40) {
        app.upload_files(Some(&owner), ADD, json!({ "id": draft_id }), part)
            .await
            .data();
        assert_eq!(
            version_count(&app, &owner, model_id).await,
            1,
            "nothing shows"
        );
    }
    let committed = app
        .gql(Some(&owner), COMMIT, json!({ "id": draft_id }))
        .await;
    let version = &committed.data()["commitDraft"];
    assert_eq!(version["fileCount"], 200);
    assert_eq!(version["digest"], digest_of(&files));
    assert_eq!(version["digest"], whole["currentVersion"]["digest"]);
    assert_eq!(version_count(&app, &owner, model_id).await, 2);
    let again = app
        .gql(Some(&owner), COMMIT, json!({ "id": draft_id }))
        .await;
    assert_eq!(again.code(), "NOT_FOUND", "a draft commits once");

    // v3: one shard changes. The hub says which hash it lacks; the rest is reused.
    let mut changed = files.clone();
    changed[7].1 = b"a changed shard\n".to_vec();
    let hashes: Vec<String> = changed.iter().map(|(_, b)| sha256_hex(b)).collect();
    let missing = app
        .gql(
            Some(&owner),
            "query($h: [String!]!) { missingBlobs(sha256: $h) }",
            json!({ "h": hashes }),
        )
        .await;
    assert_eq!(
        missing.data()["missingBlobs"],
        json!([sha256_hex(&changed[7].1)])
    );
    let blobs = app.blob_files().len();
    let next = draft(&app, &owner, model_id, "v3.0.0").await;
    let reuse: Vec<Value> = changed
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(_, (path, bytes))| json!({ "path": path, "sha256": sha256_hex(bytes) }))
        .collect();
    app.upload_files(
        Some(&owner),
        ADD,
        json!({ "id": next, "reuse": reuse }),
        &changed[7..8],
    )
    .await
    .data();
    let committed = app.gql(Some(&owner), COMMIT, json!({ "id": next })).await;
    assert_eq!(
        committed.data()["commitDraft"]["digest"],
        digest_of(&changed)
    );
    assert_eq!(
        app.blob_files().len(),
        blobs + 1,
        "one new blob: the changed shard"
    );
    let shard = app
        .client
        .get(format!(
            "{}/files/{}/{}",
            app.base,
            committed.data()["commitDraft"]["id"].as_str().unwrap(),
            changed[3].0
        ))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(
        shard.bytes().await.unwrap().as_ref(),
        changed[3].1.as_slice()
    );
}

#[tokio::test]
async fn a_path_added_again_replaces_its_file() {
    let app = spawn_app().await;
    let owner = app.register("replacer").await;
    let created = model(&app, &owner, "replace", &folder("r", 2)).await;
    let draft_id = draft(&app, &owner, &created["id"], "v2.0.0").await;
    let first = vec![
        ("config.json".to_owned(), b"{\"v\": 1}".to_vec()),
        ("README.md".to_owned(), b"# From a draft\n".to_vec()),
    ];
    let second = vec![("Config.json".to_owned(), b"{\"v\": 2}".to_vec())];
    app.upload_files(Some(&owner), ADD, json!({ "id": draft_id }), &first)
        .await
        .data();
    let answer = app
        .upload_files(Some(&owner), ADD, json!({ "id": draft_id }), &second)
        .await;
    assert_eq!(
        answer.data()["addDraftFiles"]["files"],
        json!([{ "path": "Config.json" }, { "path": "README.md" }])
    );
    let stored: Vec<String> = app
        .blob_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        !stored.contains(&sha256_hex(&first[0].1)),
        "the replaced file's blob is freed at once"
    );
    let committed = app
        .gql(Some(&owner), COMMIT, json!({ "id": draft_id }))
        .await;
    let expected = [second.clone(), first[1..].to_vec()].concat();
    assert_eq!(
        committed.data()["commitDraft"]["digest"],
        digest_of(&expected)
    );
    let card = app
        .gql(
            Some(&owner),
            "query($id: ID!) { modelVersion(id: $id) { readme } }",
            json!({ "id": committed.data()["commitDraft"]["id"] }),
        )
        .await;
    assert_eq!(
        card.data()["modelVersion"]["readme"],
        "# From a draft\n",
        "a committed draft's model card is read too"
    );
}

#[tokio::test]
async fn abandoned_discarded_and_expired_drafts_leave_nothing_and_free_their_bytes() {
    let app = spawn_app().await;
    let owner = app.register("abandoner").await;
    let created = model(&app, &owner, "abandoned", &folder("kept", 2)).await;
    let model_id = &created["id"];
    let kept = app.blob_files().len();

    // Discarded: its bytes go at once.
    let discarded = draft(&app, &owner, model_id, "v2.0.0").await;
    app.upload_files(
        Some(&owner),
        ADD,
        json!({ "id": discarded }),
        &folder("discarded", 3),
    )
    .await
    .data();
    assert_eq!(app.blob_files().len(), kept + 3);
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { discardDraft(draftId: $id) }",
        json!({ "id": discarded }),
    )
    .await
    .data();
    assert_eq!(app.blob_files().len(), kept);

    // Abandoned half-way: nothing shows, and once expired `gc` frees its bytes.
    let abandoned = draft(&app, &owner, model_id, "v3.0.0").await;
    app.upload_files(
        Some(&owner),
        ADD,
        json!({ "id": abandoned }),
        &folder("abandoned", 4),
    )
    .await
    .data();
    assert_eq!(version_count(&app, &owner, model_id).await, 1);
    let gc = modelhub::services::maintenance::gc(&app.state, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(gc.drafts_expired, 0, "a live draft is kept");
    assert_eq!(app.blob_files().len(), kept + 4);
    // Its time runs out (the TTL is an hour in tests).
    {
        use modelhub::entities::version_draft;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        let updated = version_draft::Entity::update_many()
            .col_expr(
                version_draft::Column::ExpiresAt,
                Expr::col(version_draft::Column::CreatedAt),
            )
            .filter(version_draft::Column::Id.eq(uuid::Uuid::parse_str(&abandoned).unwrap()))
            .exec(&app.state.db)
            .await
            .unwrap();
        assert_eq!(updated.rows_affected, 1);
    }
    let gone = app
        .gql(
            Some(&owner),
            "query($id: ID!) { versionDraft(id: $id) { id } }",
            json!({ "id": abandoned }),
        )
        .await;
    assert_eq!(gone.code(), "NOT_FOUND");
    let gc = modelhub::services::maintenance::gc(&app.state, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(gc.drafts_expired, 1);
    assert_eq!(
        app.blob_files().len(),
        kept,
        "only the kept version's blobs remain"
    );
    assert_eq!(app.count_rows("draft_files").await, 0);
    assert_eq!(version_count(&app, &owner, model_id).await, 1);
}

#[tokio::test]
async fn drafts_and_reuse_are_for_what_the_caller_may_change_and_read() {
    let app = spawn_app().await;
    let owner = app.register("private-owner").await;
    let other = app.register("other-user").await;
    let secret = folder("secret", 2);
    let created = model(&app, &owner, "private", &secret).await;
    let draft_id = draft(&app, &owner, &created["id"], "v2.0.0").await;

    // Another user's draft does not exist for them, before any file byte is read.
    let refused = app
        .upload_files(Some(&other), ADD, json!({ "id": draft_id }), &secret)
        .await;
    assert_eq!(refused.code(), "NOT_FOUND");
    let refused = app
        .gql(Some(&other), COMMIT, json!({ "id": draft_id }))
        .await;
    assert_eq!(refused.code(), "NOT_FOUND");

    // A private model's hashes are "missing" to others, and cannot be reused by them.
    let hash = sha256_hex(&secret[1].1);
    let missing = app
        .gql(
            Some(&other),
            "query($h: [String!]!) { missingBlobs(sha256: $h) }",
            json!({ "h": [hash.clone(), hash.to_uppercase()] }),
        )
        .await;
    assert_eq!(missing.data()["missingBlobs"], json!([hash]));
    let theirs = model(&app, &other, "mine", &folder("mine", 1)).await;
    let own_draft = draft(&app, &other, &theirs["id"], "v2.0.0").await;
    let reuse = app
        .gql(
            Some(&other),
            ADD,
            json!({ "id": own_draft, "reuse": [{ "path": "stolen.txt", "sha256": hash }] }),
        )
        .await;
    assert_eq!(reuse.code(), "BAD_USER_INPUT");
    let bad = app
        .gql(
            Some(&other),
            "query { missingBlobs(sha256: [\"not-a-hash\"]) }",
            json!({}),
        )
        .await;
    assert_eq!(bad.code(), "BAD_USER_INPUT");
}

#[tokio::test]
async fn two_commits_of_one_draft_make_one_version() {
    let app = spawn_app().await;
    let owner = app.register("racer").await;
    let created = model(&app, &owner, "race", &folder("race", 1)).await;
    for round in 0..5 {
        let draft_id = draft(&app, &owner, &created["id"], &format!("v2.0.{round}")).await;
        app.upload_files(
            Some(&owner),
            ADD,
            json!({ "id": draft_id }),
            &folder(&format!("round {round}"), 2),
        )
        .await
        .data();
        let (a, b) = tokio::join!(
            app.gql(Some(&owner), COMMIT, json!({ "id": draft_id })),
            app.gql(Some(&owner), COMMIT, json!({ "id": draft_id })),
        );
        let mut codes = [a.code_or_ok(), b.code_or_ok()];
        codes.sort();
        assert_eq!(codes, ["NOT_FOUND", "OK"], "round {round}");
    }
    assert_eq!(version_count(&app, &owner, &created["id"]).await, 6);
}

#[tokio::test]
async fn deleting_a_model_frees_its_drafts_bytes() {
    let app = spawn_app().await;
    let owner = app.register("deleter").await;
    let created = model(&app, &owner, "doomed", &folder("doomed", 1)).await;
    let draft_id = draft(&app, &owner, &created["id"], "v2.0.0").await;
    app.upload_files(
        Some(&owner),
        ADD,
        json!({ "id": draft_id }),
        &folder("only in the draft", 3),
    )
    .await
    .data();
    assert!(!app.blob_files().is_empty());
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { deleteModel(id: $id) }",
        json!({ "id": created["id"] }),
    )
    .await
    .data();
    assert_eq!(app.count_rows("draft_files").await, 0);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
}

#[tokio::test]
async fn under_reject_drafts_refuse_held_files_and_versions_but_not_an_index_before_its_shards() {
    let app = crate::helpers::spawn_with(crate::helpers::Options {
        unsafe_uploads: modelhub::config::UnsafeUploads::Reject,
        ..crate::helpers::Options::default()
    })
    .await;
    let owner = app.register("strict").await;
    let created = model(&app, &owner, "strict", &folder("strict", 1)).await;
    let draft_id = draft(&app, &owner, &created["id"], "v2.0.0").await;
    let evil = vec![(
        "evil.pkl".to_owned(),
        b"cos\nsystem\n(S'echo owned'\ntR.".to_vec(),
    )];
    let refused = app
        .upload_files(Some(&owner), ADD, json!({ "id": draft_id }), &evil)
        .await;
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    // The index first, its shards later: each addition is judged on its own files.
    let index = json!({ "weight_map": { "a": "w-00001-of-00002.safetensors", "b": "w-00002-of-00002.safetensors" } });
    let first = vec![(
        "w.safetensors.index.json".to_owned(),
        index.to_string().into_bytes(),
    )];
    app.upload_files(Some(&owner), ADD, json!({ "id": draft_id }), &first)
        .await
        .data();
    let shard = vec![("w-00001-of-00002.safetensors".to_owned(), safetensors(3))];
    app.upload_files(Some(&owner), ADD, json!({ "id": draft_id }), &shard)
        .await
        .data();
    // Committed with a shard missing, the version would be held: refused, the draft kept.
    let commit = app
        .gql(Some(&owner), COMMIT, json!({ "id": draft_id }))
        .await;
    assert_eq!(commit.code(), "BAD_USER_INPUT");
    assert!(
        commit.message().contains("w-00002-of-00002"),
        "{}",
        commit.message()
    );
    let last = vec![("w-00002-of-00002.safetensors".to_owned(), safetensors(5))];
    app.upload_files(Some(&owner), ADD, json!({ "id": draft_id }), &last)
        .await
        .data();
    let committed = app
        .gql(Some(&owner), COMMIT, json!({ "id": draft_id }))
        .await;
    assert_eq!(committed.data()["commitDraft"]["fileCount"], 3);
}
