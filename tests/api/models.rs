//! Reading and changing models: visibility, lookups, filters, sorting, pages, statement counts,
//! updates and deletions.

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, random_forest, safetensors, sha256_hex, spawn_app, spawn_with_cache,
};

fn input(name: &str, framework: &str, tags: &[&str]) -> Value {
    json!({ "name": name, "framework": framework, "version": "v1.0.0", "tags": tags, "taskType": "classification", "license": "mit", "description": format!("{name} does things") })
}

async fn create(app: &TestApp, token: &str, input: Value) -> String {
    let answer = app
        .create_model(token, input, "m.joblib", random_forest())
        .await;
    answer.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

const MODEL: &str = "query($id: ID!) { model(id: $id) { id name owner { username email } } }";

#[tokio::test]
async fn private_models_exist_only_for_their_owner_and_administrators() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("other").await;
    let admin = app.admin("admin").await;
    let id = create(&app, &owner, input("secret", "pytorch", &[])).await;

    let seen = app.gql(Some(&owner), MODEL, json!({ "id": id })).await;
    assert_eq!(seen.data()["model"]["owner"]["email"], "owner@example.com");
    assert_eq!(
        app.gql(Some(&admin), MODEL, json!({ "id": id }))
            .await
            .data()["model"]["name"],
        "secret"
    );
    for token in [Some(other.as_str()), None] {
        assert!(app.gql(token, MODEL, json!({ "id": id })).await.data()["model"].is_null());
        let by_name = app
            .gql(
                token,
                "{ modelByName(owner: \"owner\", name: \"secret\") { id } }",
                json!({}),
            )
            .await;
        assert!(by_name.data()["modelByName"].is_null());
        let list = app.gql(token, "{ models { totalCount } }", json!({})).await;
        assert_eq!(list.data()["models"]["totalCount"], 0);
        // Changing it: the same answer as for a model that does not exist.
        let update = app
            .gql(
                token,
                "mutation($id: ID!) { updateModel(id: $id, input: { description: \"x\" }) { id } }",
                json!({ "id": id }),
            )
            .await;
        // Anonymous callers are asked to sign in first, whatever the id.
        let expected = if token.is_some() {
            "NOT_FOUND"
        } else {
            "UNAUTHENTICATED"
        };
        assert_eq!(update.code(), expected);
        let missing = app
            .gql(
                token,
                "mutation($id: ID!) { deleteModel(id: $id) }",
                json!({ "id": uuid::Uuid::now_v7() }),
            )
            .await;
        assert_eq!(
            update.body["errors"][0]["message"],
            missing.body["errors"][0]["message"]
        );
    }
    let by_name = app
        .gql(
            Some(&owner),
            "{ modelByName(owner: \"OWNER\", name: \"secret\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(by_name.data()["modelByName"]["id"], id.as_str());
    // Administrators may change anyone's model.
    let update = app
        .gql(Some(&admin), "mutation($id: ID!) { updateModel(id: $id, input: { description: \"reviewed\" }) { description } }", json!({ "id": id }))
        .await;
    assert_eq!(update.data()["updateModel"]["description"], "reviewed");
}

#[tokio::test]
async fn public_models_are_read_only_to_others() {
    let app = spawn_app().await;
    let owner = app.register("pub-owner").await;
    let other = app.register("pub-other").await;
    let id = create(&app, &owner, input("open", "onnx", &[])).await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.state.db,
        "UPDATE models SET visibility = 'public', approval_status = 'approved'",
    )
    .await
    .unwrap();
    let seen = app.gql(None, MODEL, json!({ "id": id })).await;
    assert_eq!(seen.data()["model"]["name"], "open");
    assert!(
        seen.data()["model"]["owner"]["email"].is_null(),
        "emails are private"
    );
    let update = app
        .gql(Some(&other), "mutation($id: ID!) { updateModel(id: $id, input: { description: \"mine now\" }) { id } }", json!({ "id": id }))
        .await;
    assert_eq!(update.code(), "FORBIDDEN");
    let delete = app
        .gql(
            None,
            "mutation($id: ID!) { deleteModel(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(delete.code(), "UNAUTHENTICATED");
    let version = app
        .create_version(
            &other,
            &id,
            json!({ "version": "2.0.0" }),
            "m.joblib",
            random_forest(),
        )
        .await;
    assert_eq!(version.code(), "FORBIDDEN");
    assert_eq!(app.count_rows("model_versions").await, 1);
}

#[tokio::test]
async fn filters_sorting_and_pages() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.admin("boss").await;
    create(
        &app,
        &alice,
        input("Fraud Detector", "scikit-learn", &["fraud", "tabular"]),
    )
    .await;
    create(&app, &alice, input("Sentiment 100%", "pytorch", &["nlp"])).await;
    create(&app, &bob, input("Tabular Boost", "xgboost", &["tabular"])).await;
    let st = app
        .create_model(&bob, json!({ "name": "Vision", "framework": "pytorch", "version": "1.0.0", "license": "apache-2.0" }), "w.safetensors", safetensors(4))
        .await;
    st.data();

    let names = |answer: &crate::helpers::Gql| -> Vec<String> {
        answer.data()["models"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let q = "query($f: ModelFilter, $s: ModelSort, $first: Int, $after: String) { models(filter: $f, sort: $s, first: $first, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { name } } } }";
    let run = |filter: Value, sort: Value| {
        let admin = admin.clone();
        let app = &app;
        async move {
            app.gql(Some(&admin), q, json!({ "f": filter, "s": sort }))
                .await
        }
    };
    assert_eq!(
        names(&run(json!({ "search": "TABULAR" }), json!(null)).await),
        ["Tabular Boost"]
    );
    assert_eq!(
        names(
            &run(
                json!({ "framework": "PyTorch" }),
                json!({ "field": "NAME", "direction": "ASC" })
            )
            .await
        ),
        ["Sentiment 100%", "Vision"]
    );
    assert_eq!(
        names(
            &run(
                json!({ "search": "does", "framework": "PyTorch" }),
                json!(null)
            )
            .await
        ),
        ["Sentiment 100%"]
    );
    assert_eq!(
        names(&run(json!({ "search": "100%" }), json!(null)).await),
        ["Sentiment 100%"]
    );
    assert_eq!(
        names(&run(json!({ "search": "_" }), json!(null)).await),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            &run(
                json!({ "tags": ["tabular"] }),
                json!({ "field": "NAME", "direction": "ASC" })
            )
            .await
        ),
        ["Fraud Detector", "Tabular Boost"]
    );
    assert_eq!(
        names(&run(json!({ "tags": ["tabular", "fraud"] }), json!(null)).await),
        ["Fraud Detector"]
    );
    assert_eq!(
        names(
            &run(
                json!({ "owner": "bob" }),
                json!({ "field": "CREATED_AT", "direction": "ASC" })
            )
            .await
        ),
        ["Tabular Boost", "Vision"]
    );
    assert_eq!(
        names(&run(json!({ "license": "Apache-2.0" }), json!(null)).await),
        ["Vision"]
    );
    assert_eq!(
        names(&run(json!({ "format": "SAFETENSORS" }), json!(null)).await),
        ["Vision"]
    );
    assert_eq!(
        names(
            &run(
                json!({ "taskType": "classification", "search": "'; DROP TABLE models; --" }),
                json!(null)
            )
            .await
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            &run(
                json!(null),
                json!({ "field": "CREATED_AT", "direction": "DESC" })
            )
            .await
        ),
        [
            "Vision",
            "Tabular Boost",
            "Sentiment 100%",
            "Fraud Detector"
        ]
    );

    // Walk the NAME order two at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .gql(Some(&admin), q, json!({ "s": { "field": "NAME", "direction": "DESC" }, "first": 2, "after": after }))
            .await;
        assert_eq!(page.data()["models"]["totalCount"], 4);
        seen.extend(names(&page));
        let info = &page.data()["models"]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], after.is_some());
        if info["hasNextPage"] == false {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen,
        [
            "Vision",
            "Tabular Boost",
            "Sentiment 100%",
            "Fraud Detector"
        ]
    );

    // Alice sees her own two models only.
    let mine = app
        .gql(Some(&alice), "{ models { totalCount } }", json!({}))
        .await;
    assert_eq!(mine.data()["models"]["totalCount"], 2);

    for (variables, field) in [
        (json!({ "first": 101 }), "first"),
        (json!({ "first": -1 }), "first"),
        (json!({ "after": "garbage" }), "after"),
    ] {
        let answer = app.gql(Some(&admin), q, variables).await;
        assert_eq!(answer.code(), "BAD_USER_INPUT");
        assert_eq!(answer.extensions()["field"], field);
    }
}

#[tokio::test]
async fn versions_are_ordered_as_semver_and_current_follows_the_newest() {
    let app = spawn_app().await;
    let token = app.register("semver").await;
    let id = create(&app, &token, input("versions", "pytorch", &[])).await;
    let mut ids = std::collections::HashMap::new();
    for (i, version) in ["v1.10.0", "1.2.0", "v2.0.0-rc.1", "v1.9.9"]
        .iter()
        .enumerate()
    {
        let bytes = safetensors(i + 2);
        let answer = app
            .create_version(
                &token,
                &id,
                json!({ "version": version, "changelog": format!("build {i}") }),
                "w.safetensors",
                bytes,
            )
            .await;
        ids.insert(
            *version,
            answer.data()["createModelVersion"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let q = "query($id: ID!) { model(id: $id) { currentVersion { version } versions { totalCount edges { node { version } } } v: version(version: \"1.2.0\") { version changelog } } }";
    let answer = app.gql(Some(&token), q, json!({ "id": id })).await;
    let model = &answer.data()["model"];
    let order: Vec<&str> = model["versions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["v2.0.0-rc.1", "v1.10.0", "v1.9.9", "1.2.0", "v1.0.0"]
    );
    assert_eq!(model["currentVersion"]["version"], "v2.0.0-rc.1");
    assert_eq!(model["v"]["changelog"], "build 1");

    let deleted = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { deleteModelVersion(id: $id) }",
            json!({ "id": ids["v2.0.0-rc.1"] }),
        )
        .await;
    assert_eq!(deleted.data()["deleteModelVersion"], true);
    let answer = app.gql(Some(&token), q, json!({ "id": id })).await;
    assert_eq!(
        answer.data()["model"]["currentVersion"]["version"],
        "v1.10.0"
    );
    assert_eq!(answer.data()["model"]["versions"]["totalCount"], 4);
    assert_eq!(app.blob_files().len(), 4);
}

#[tokio::test]
async fn listing_costs_a_constant_number_of_statements() {
    let app = spawn_app().await;
    let admin = app.admin("counter").await;
    let q = "{ models(first: 100) { totalCount edges { node { name owner { username } currentVersion { version sizeBytes } versions { edges { node { version } } } } } } }";
    app.warm_credential(&admin).await;
    let mut costs = Vec::new();
    for round in 0..2 {
        let owner = app.register(&format!("owner{round}")).await;
        for i in 0..(if round == 0 { 3 } else { 30 }) {
            let id = create(
                &app,
                &owner,
                input(&format!("m{round}-{i}"), "pytorch", &["t"]),
            )
            .await;
            app.create_version(
                &owner,
                &id,
                json!({ "version": "2.0.0" }),
                "w.safetensors",
                safetensors(3),
            )
            .await
            .data();
        }
        let before = app.statements();
        let answer = app.gql(Some(&admin), q, json!({})).await;
        let cost = app.statements() - before;
        let count = answer.data()["models"]["edges"].as_array().unwrap().len();
        assert_eq!(count, if round == 0 { 3 } else { 33 });
        costs.push(cost);
    }
    assert_eq!(
        costs[0], costs[1],
        "statements for 3 models vs 33 models: {costs:?}"
    );
    assert!(costs[0] <= 8, "{costs:?}");
}

#[tokio::test]
async fn deleting_removes_rows_and_unshared_files() {
    let app = spawn_app().await;
    let token = app.register("deleter").await;
    let shared = random_forest();
    let a = create(&app, &token, input("a", "sklearn", &["x"])).await;
    let b = create(&app, &token, input("b", "sklearn", &[])).await;
    let unique = safetensors(5);
    app.create_version(
        &token,
        &a,
        json!({ "version": "2.0.0" }),
        "w.safetensors",
        unique.clone(),
    )
    .await
    .data();
    assert_eq!(app.blob_files().len(), 2);

    let deleted = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { deleteModel(id: $id) }",
            json!({ "id": a }),
        )
        .await;
    assert_eq!(deleted.data()["deleteModel"], true);
    let files = app.blob_files();
    assert_eq!(
        files.len(),
        1,
        "the file b still uses stays; a's own file goes"
    );
    assert!(files[0].ends_with(sha256_hex(&shared)));
    assert_eq!(app.count_rows("model_tags").await, 0);

    app.gql(
        Some(&token),
        "mutation($id: ID!) { deleteModel(id: $id) }",
        json!({ "id": b }),
    )
    .await
    .data();
    assert!(app.blob_files().is_empty());
    assert_eq!(app.count_rows("model_versions").await, 0);
}

#[tokio::test]
async fn updates_change_metadata_and_tags() {
    let app = spawn_app().await;
    let token = app.register("updater").await;
    let id = create(&app, &token, input("before", "sklearn", &["old"])).await;
    create(&app, &token, input("taken", "sklearn", &[])).await;
    let q = "mutation($id: ID!, $i: UpdateModelInput!) { updateModel(id: $id, input: $i) { name description tags license taskType } }";
    let answer = app
        .gql(Some(&token), q, json!({ "id": id, "i": { "name": "after", "tags": ["New", "new", "other"], "license": "Apache-2.0", "description": "better" } }))
        .await;
    let model = &answer.data()["updateModel"];
    assert_eq!(model["name"], "after");
    assert_eq!(model["tags"], json!(["new", "other"]));
    assert_eq!(model["license"], "apache-2.0");
    let filtered = app
        .gql(
            Some(&token),
            "{ models(filter: { tags: [\"old\"] }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(filtered.data()["models"]["totalCount"], 0);
    let clash = app
        .gql(
            Some(&token),
            q,
            json!({ "id": id, "i": { "name": "taken" } }),
        )
        .await;
    assert_eq!(clash.code(), "CONFLICT");
    let bad = app
        .gql(
            Some(&token),
            q,
            json!({ "id": id, "i": { "tags": ["bad tag"] } }),
        )
        .await;
    assert_eq!(bad.extensions()["field"], "input.tags");
}

#[tokio::test]
async fn nested_lists_of_owners_models_batch_and_show_only_what_the_viewer_may_see() {
    let app = spawn_app().await;
    let admin = app.admin("nest-admin").await;
    let viewer = app.register("nest-viewer").await;
    let q = "{ models(first: 50) { edges { node { owner { username models(first: 10) { totalCount edges { node { name visibility owner { username } currentVersion { version } } } } } } } } }";
    app.warm_credential(&viewer).await;
    let mut costs = Vec::new();
    let mut tokens = Vec::new();
    for round in [2, 6] {
        while tokens.len() < round {
            let owners = tokens.len();
            let owner = app.register(&format!("nest-owner{owners}")).await;
            // Per owner: two public models and one private one.
            for i in 0..3 {
                let id = create(
                    &app,
                    &owner,
                    input(&format!("n{owners}-{i}"), "pytorch", &[]),
                )
                .await;
                if i < 2 {
                    app.publish(&owner, &admin, &id).await;
                }
            }
            tokens.push(owner);
        }
        let before = app.statements();
        let answer = app.gql(Some(&viewer), q, json!({})).await;
        costs.push(app.statements() - before);
        let edges = answer.data()["models"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 2 * round, "the public models");
        for edge in edges {
            let owner = &edge["node"]["owner"];
            let theirs = owner["models"]["edges"].as_array().unwrap();
            assert_eq!(owner["models"]["totalCount"], 2, "{owner}");
            assert_eq!(theirs.len(), 2, "{owner}");
            for model in theirs {
                assert_eq!(model["node"]["visibility"], "PUBLIC");
                assert_eq!(model["node"]["owner"]["username"], owner["username"]);
                assert_eq!(model["node"]["currentVersion"]["version"], "v1.0.0");
            }
        }
    }
    assert_eq!(
        costs[0], costs[1],
        "statements for 2 owners vs 6: {costs:?}"
    );

    // The owner sees their private model in their own list, newest first, page by page.
    let token = &tokens[0];
    let mine = "query($after: String) { me { models(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } } }";
    let first = app.gql(Some(token), mine, json!({ "after": null })).await;
    let page = &first.data()["me"]["models"];
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let names: Vec<&str> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["n0-2", "n0-1"]);
    let cursor = page["pageInfo"]["endCursor"].as_str().unwrap();
    let second = app.gql(Some(token), mine, json!({ "after": cursor })).await;
    let page = &second.data()["me"]["models"];
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    assert_eq!(page["edges"][0]["node"]["name"], "n0-0");
    assert_eq!(page["edges"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn list_totals_are_counted_once_per_change() {
    // Without the response cache, which would answer the repeat without any SQL.
    let app = spawn_with_cache(0).await;
    let owner = app.register("totals").await;
    create(&app, &owner, input("t-1", "pytorch", &[])).await;
    let q = "{ models(first: 5) { totalCount edges { node { name } } } }";
    let cost = async || {
        let before = app.statements();
        let answer = app.gql(Some(&owner), q, json!({})).await;
        (
            app.statements() - before,
            answer.data()["models"]["totalCount"].clone(),
        )
    };
    let (counted, total) = cost().await;
    assert_eq!(total, 1);
    let (remembered, total) = cost().await;
    assert_eq!(total, 1);
    assert_eq!(remembered + 1, counted, "the second total is remembered");
    // A change through this process makes the remembered total stale at once.
    create(&app, &owner, input("t-2", "pytorch", &[])).await;
    let (recounted, total) = cost().await;
    assert_eq!(total, 2);
    assert_eq!(recounted, counted);
}

#[tokio::test]
async fn models_made_at_once_whose_names_make_one_slug_each_get_their_own() {
    let app = spawn_app().await;
    let owner = app.register("slugger").await;
    let names = [
        "sentiment model",
        "sentiment-model",
        "sentiment - model",
        "sentiment  model",
    ];
    // Files of their own, so that no shared blob's lock orders the creations.
    let made = futures_util::future::join_all(names.iter().enumerate().map(|(i, name)| {
        app.upload(
            Some(&owner),
            "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { slug } }",
            json!({ "input": { "name": name, "framework": "pytorch", "version": "1.0.0" } }),
            "w.safetensors",
            safetensors(3 + i),
        )
    }))
    .await;
    let mut slugs: Vec<String> = made
        .iter()
        .map(|m| m.data()["createModel"]["slug"].as_str().unwrap().to_owned())
        .collect();
    slugs.sort_unstable();
    assert_eq!(
        slugs,
        [
            "sentiment-model",
            "sentiment-model-2",
            "sentiment-model-3",
            "sentiment-model-4"
        ]
    );
}
