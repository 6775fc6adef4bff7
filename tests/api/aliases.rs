//! Aliases: named pointers of a model to its versions, set, moved and removed with their
//! history and audit rows, resolved wherever a version is named (`modelVersionByRef`,
//! `/files/{owner}/{name}@{ref}/…`, Hugging Face revisions), protected ones moved only by
//! administrators and PROMOTE tokens, and listed at a constant cost.

use serde_json::{Value, json};

use crate::helpers::{TestApp, safetensors, spawn_app};

const SET: &str = "mutation($m: ID!, $a: String!, $v: ID!) { setAlias(modelId: $m, alias: $a, versionId: $v) { name protected version { id version } updatedBy { username } } }";
const REMOVE: &str =
    "mutation($m: ID!, $a: String!) { removeAlias(modelId: $m, alias: $a) { id } }";
const BY_REF: &str = "query($o: String!, $n: String!, $r: String!) { modelVersionByRef(owner: $o, name: $n, ref: $r) { id version } }";

/// A model `name` of `token`'s with versions 1.0.0 and 1.1.0 (one file each, `w.safetensors`,
/// of `n` and `n + 1` values): its id and the two versions' ids.
async fn model_with_two_versions(
    app: &TestApp,
    token: &str,
    name: &str,
    n: usize,
) -> (String, String, String) {
    let created = app
        .create_model(
            token,
            json!({ "name": name, "framework": "PYTORCH", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(n),
        )
        .await;
    let model = created.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app
        .create_version(
            token,
            &model,
            json!({ "version": "1.1.0" }),
            "w.safetensors",
            safetensors(n + 1),
        )
        .await;
    let second = second.data()["createModelVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (model, first, second)
}

async fn set(
    app: &TestApp,
    token: &str,
    model: &str,
    alias: &str,
    version: &str,
) -> crate::helpers::Gql {
    app.gql(
        Some(token),
        SET,
        json!({ "m": model, "a": alias, "v": version }),
    )
    .await
}

async fn by_ref(app: &TestApp, token: Option<&str>, owner: &str, name: &str, r: &str) -> Value {
    app.gql(token, BY_REF, json!({ "o": owner, "n": name, "r": r }))
        .await
        .data()["modelVersionByRef"]
        .clone()
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    use modelhub::entities::audit_log;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.like("alias%"))
        .order_by_asc(audit_log::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect()
}

#[tokio::test]
async fn aliases_move_with_history_and_name_versions_everywhere() {
    let app = spawn_app().await;
    let owner = app.register("alias-owner").await;
    let (model, first, second) = model_with_two_versions(&app, &owner, "bert", 10).await;

    let champion = set(&app, &owner, &model, "champion", &first).await;
    let alias = &champion.data()["setAlias"];
    assert_eq!(alias["name"], "champion");
    assert_eq!(alias["protected"], false);
    assert_eq!(alias["version"]["version"], "1.0.0");
    assert_eq!(alias["updatedBy"]["username"], "alias-owner");
    assert_eq!(
        by_ref(&app, Some(&owner), "alias-owner", "bert", "champion").await["id"],
        first.as_str()
    );
    // Pointing it where it points changes nothing; moving it is kept.
    set(&app, &owner, &model, "champion", &first).await.data();
    set(&app, &owner, &model, "champion", &second).await.data();
    set(&app, &owner, &model, "staging", &first).await.data();
    let read = app
        .gql(
            Some(&owner),
            "query($id: ID!) { model(id: $id) { aliases { name version { version aliases } } alias(name: \"champion\") { version { id } } aliasHistory(first: 10) { totalCount edges { node { alias version { version } previousVersion { version } movedBy { username } } } } } }",
            json!({ "id": model }),
        )
        .await;
    let read = &read.data()["model"];
    assert_eq!(
        read["aliases"],
        json!([
            { "name": "champion", "version": { "version": "1.1.0", "aliases": ["champion"] } },
            { "name": "staging", "version": { "version": "1.0.0", "aliases": ["staging"] } },
        ])
    );
    assert_eq!(read["alias"]["version"]["id"], second.as_str());
    assert_eq!(read["aliasHistory"]["totalCount"], 3);
    let moves: Vec<(Value, Value, Value)> = read["aliasHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["alias"].clone(),
                n["version"]["version"].clone(),
                n["previousVersion"]["version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (json!("staging"), json!("1.0.0"), Value::Null),
            (json!("champion"), json!("1.1.0"), json!("1.0.0")),
            (json!("champion"), json!("1.0.0"), Value::Null),
        ]
    );

    // By reference: an alias, a version string with or without `v`; nothing else.
    for (reference, expected) in [
        ("champion", &second),
        ("1.0.0", &first),
        ("v1.1.0", &second),
    ] {
        assert_eq!(
            by_ref(&app, Some(&owner), "alias-owner", "bert", reference).await["id"],
            expected.as_str()
        );
    }
    assert_eq!(
        by_ref(&app, Some(&owner), "alias-owner", "bert", "nightly").await,
        Value::Null
    );
    let stranger = app.register("alias-stranger").await;
    assert_eq!(
        by_ref(&app, Some(&stranger), "alias-owner", "bert", "champion").await,
        Value::Null
    );

    // In file addresses, whole or by path, and as a Hugging Face revision.
    let newer = safetensors(11);
    // Revisions as on the Hugging Face routes: `main` (the current version) and commit ids too.
    let commit = app
        .gql(
            Some(&owner),
            "query($id: ID!) { modelVersion(id: $id) { commitId } }",
            json!({ "id": second }),
        )
        .await
        .data()["modelVersion"]["commitId"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_commit = format!("/files/alias-owner/bert@{commit}/w.safetensors");
    for path in [
        "/files/alias-owner/bert@champion",
        "/files/alias-owner/bert@champion/w.safetensors",
        "/files/alias-owner/bert@1.1.0/w.safetensors",
        "/files/alias-owner/bert@main/w.safetensors",
        "/files/alias-owner/BERT@main",
        &by_commit,
    ] {
        let answer = get(&app, &owner, path).await;
        assert_eq!(answer.status(), 200, "{path}");
        assert!(answer.bytes().await.unwrap() == newer, "{path}");
    }
    let staged = get(
        &app,
        &owner,
        "/files/alias-owner/bert@staging/w.safetensors",
    )
    .await;
    assert!(staged.bytes().await.unwrap() == safetensors(10));
    for path in [
        "/files/alias-owner/bert@nightly/w.safetensors",
        "/files/alias-owner/bert/w.safetensors",
        "/files/alias-owner/bert@champion/other.bin",
    ] {
        assert_eq!(get(&app, &owner, path).await.status(), 404, "{path}");
    }
    assert_eq!(
        get(&app, &stranger, "/files/alias-owner/bert@champion")
            .await
            .status(),
        404
    );
    let hf = get(
        &app,
        &owner,
        "/alias-owner/bert/resolve/champion/w.safetensors",
    )
    .await;
    assert_eq!(hf.status(), 200);
    let commit = app
        .gql(
            Some(&owner),
            "query($id: ID!) { modelVersion(id: $id) { commitId } }",
            json!({ "id": second }),
        )
        .await;
    assert_eq!(
        hf.headers()["x-repo-commit"],
        commit.data()["modelVersion"]["commitId"].as_str().unwrap()
    );
    assert!(hf.bytes().await.unwrap() == newer);

    // Names that would read as revisions, and versions of other models, are refused.
    let (other, other_first, _) = model_with_two_versions(&app, &owner, "gpt", 20).await;
    for bad in ["main", "Champion", "1.2.0", "v1.0.0", "prod/eu"] {
        let refused = set(&app, &owner, &model, bad, &first).await;
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{bad}");
        assert_eq!(refused.extensions()["field"], "alias", "{bad}");
    }
    let foreign = set(&app, &owner, &model, "champion", &other_first).await;
    assert_eq!(foreign.code(), "BAD_USER_INPUT");
    assert_eq!(foreign.extensions()["field"], "versionId");
    assert_eq!(
        set(&app, &stranger, &model, "champion", &first)
            .await
            .code(),
        "NOT_FOUND"
    );

    // A version an alias points to stays until the alias moves.
    let delete = "mutation($id: ID!) { deleteModelVersion(id: $id) }";
    let kept = app.gql(Some(&owner), delete, json!({ "id": second })).await;
    assert_eq!(kept.code(), "CONFLICT");
    assert!(kept.message().contains("champion"), "{}", kept.message());
    app.gql(Some(&owner), REMOVE, json!({ "m": model, "a": "champion" }))
        .await
        .data();
    assert_eq!(
        app.gql(Some(&owner), REMOVE, json!({ "m": model, "a": "champion" }))
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.gql(Some(&owner), delete, json!({ "id": second }))
            .await
            .data()["deleteModelVersion"],
        true
    );
    assert_eq!(
        audit_actions(&app).await,
        ["alias_moved", "alias_moved", "alias_moved", "alias_removed"]
    );
    // A model goes with its aliases and their history.
    set(&app, &owner, &other, "champion", &other_first)
        .await
        .data();
    for id in [&model, &other] {
        let gone = app
            .gql(
                Some(&owner),
                "mutation($id: ID!) { deleteModel(id: $id) }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(gone.data()["deleteModel"], true);
    }
    assert_eq!(app.count_rows("model_aliases").await, 0);
    assert_eq!(app.count_rows("alias_moves").await, 0);
}

#[tokio::test]
async fn protected_aliases_move_only_for_administrators_and_promote_tokens() {
    let app = spawn_app().await;
    let owner = app.register("deployer").await;
    let admin = app.admin("registry-admin").await;
    let (model, first, second) = model_with_two_versions(&app, &owner, "ranker", 5).await;
    let token = |scopes: Value| {
        let app = &app;
        let owner = owner.clone();
        async move {
            let created = app
                .gql(
                    Some(&owner),
                    "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token } }",
                    json!({ "i": { "name": "pipeline", "scopes": scopes } }),
                )
                .await;
            created.data()["createApiToken"]["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let writer = token(json!(["READ", "WRITE"])).await;
    let promoter = token(json!(["READ", "WRITE", "PROMOTE"])).await;

    // `production` is protected by default: neither the owner's login nor a WRITE token moves
    // it; a PROMOTE token and an administrator do. Other aliases stay the owner's to move.
    for refused in [&owner, &writer] {
        assert_eq!(
            set(&app, refused, &model, "production", &first)
                .await
                .code(),
            "FORBIDDEN"
        );
    }
    let promoted = set(&app, &promoter, &model, "production", &first).await;
    assert_eq!(promoted.data()["setAlias"]["protected"], true);
    assert_eq!(
        app.gql(
            Some(&writer),
            REMOVE,
            json!({ "m": model, "a": "production" })
        )
        .await
        .code(),
        "FORBIDDEN"
    );
    let moved = set(&app, &admin, &model, "production", &second).await;
    assert_eq!(
        moved.data()["setAlias"]["updatedBy"]["username"],
        "registry-admin"
    );
    assert_eq!(
        set(&app, &writer, &model, "canary", &first)
            .await
            .code_or_ok(),
        "OK"
    );
    // PROMOTE moves protected aliases only of models its holder may change.
    let other = app.register("other-team").await;
    let (theirs, their_first, _) = model_with_two_versions(&app, &other, "theirs", 6).await;
    assert_eq!(
        set(&app, &promoter, &theirs, "production", &their_first)
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        by_ref(&app, Some(&owner), "deployer", "ranker", "production").await["id"],
        second.as_str()
    );
}

#[tokio::test]
async fn listing_aliases_costs_a_constant_number_of_statements() {
    let app = spawn_app().await;
    let admin = app.admin("alias-counter").await;
    let q = "{ models(first: 100) { edges { node { name aliases { name version { version } } currentVersion { aliases } aliasHistory(first: 5) { totalCount edges { node { alias } } } derivatives(first: 5) { totalCount edges { node { name } } } } } } }";
    app.warm_credential(&admin).await;
    let mut costs = Vec::new();
    for (round, models) in [(0, 2), (1, 8)] {
        let owner = app.register(&format!("alias-lister{round}")).await;
        let mut made = Vec::new();
        for i in 0..models {
            let (model, first, second) =
                model_with_two_versions(&app, &owner, &format!("m{round}-{i}"), 3).await;
            set(&app, &owner, &model, "champion", &first).await.data();
            set(&app, &owner, &model, "canary", &second).await.data();
            // Each model after the first two is made from the one before it.
            if i >= 2 {
                app.gql(
                    Some(&owner),
                    "mutation($id: ID!, $base: ID!) { updateModel(id: $id, input: { baseModel: { modelId: $base, relation: FINETUNE } }) { id } }",
                    json!({ "id": model, "base": made[i - 1] }),
                )
                .await
                .data();
            }
            made.push(model);
        }
        let before = app.statements();
        let answer = app.gql(Some(&admin), q, json!({})).await;
        costs.push(app.statements() - before);
        let edges = answer.data()["models"]["edges"].as_array().unwrap().clone();
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["aliases"].as_array().unwrap().len() == 2
                    && e["node"]["currentVersion"]["aliases"] == json!(["canary"])
                    && e["node"]["aliasHistory"]["totalCount"] == 2
                    && e["node"]["aliasHistory"]["edges"][0]["node"]["alias"] == "canary")
        );
        let derived: usize = edges
            .iter()
            .map(|e| e["node"]["derivatives"]["edges"].as_array().unwrap().len())
            .sum();
        let counted: i64 = edges
            .iter()
            .map(|e| e["node"]["derivatives"]["totalCount"].as_i64().unwrap())
            .sum();
        assert_eq!((derived, counted), (models - 2, models as i64 - 2));
    }
    assert_eq!(
        costs[0], costs[1],
        "statements for 2 models vs 10: {costs:?}"
    );
}

#[tokio::test]
async fn withdrawing_a_version_takes_its_aliases_off_it() {
    let app = spawn_app().await;
    let owner = app.register("yanker").await;
    let admin = app.admin("yank-admin").await;
    let (model, first, second) = model_with_two_versions(&app, &owner, "yanked", 7).await;
    set(&app, &owner, &model, "champion", &first).await.data();
    set(&app, &owner, &model, "canary", &first).await.data();
    set(&app, &owner, &model, "stable", &second).await.data();
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { withdrawModelVersion(id: $id, reason: \"leaks data\") { id } }",
        json!({ "id": first }),
    )
    .await
    .data();
    let read = app
        .gql(
            Some(&owner),
            "query($id: ID!) { model(id: $id) { aliases { name } aliasHistory(first: 2) { edges { node { alias version { id } previousVersion { id } movedBy { username } } } } } }",
            json!({ "id": model }),
        )
        .await;
    let read = &read.data()["model"];
    assert_eq!(read["aliases"], json!([{ "name": "stable" }]));
    let mut removed: Vec<(&str, &Value, &str)> = read["aliasHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            assert_eq!(n["previousVersion"]["id"], first.as_str());
            (
                n["alias"].as_str().unwrap(),
                &n["version"],
                n["movedBy"]["username"].as_str().unwrap(),
            )
        })
        .collect();
    removed.sort_unstable_by_key(|r| r.0);
    assert_eq!(
        removed,
        [
            ("canary", &Value::Null, "yank-admin"),
            ("champion", &Value::Null, "yank-admin")
        ]
    );
    let answer = app
        .gql(
            Some(&owner),
            BY_REF,
            json!({ "o": "yanker", "n": "yanked", "r": "champion" }),
        )
        .await;
    assert!(
        answer.body["data"]["modelVersionByRef"].is_null(),
        "{:?}",
        answer.body
    );
    assert!(
        audit_actions(&app)
            .await
            .iter()
            .filter(|a| *a == "alias_removed")
            .count()
            == 2
    );
}
