//! Lineage: a model's base model (one of this hub the caller may see, or an external
//! reference), how it was made from it, its datasets and training run; given with the model or
//! taken from its model card; its derivatives, the `baseModel` filter, cycles refused, and a
//! deleted base kept as a reference.

use serde_json::{Value, json};

use crate::helpers::{TestApp, safetensors, spawn_app};

const LINEAGE: &str = "baseModel { model { id name } reference relation } datasets trainingRun";

async fn create(app: &TestApp, token: &str, input: Value) -> crate::helpers::Gql {
    app.upload_files(
        Some(token),
        &format!("mutation($input: CreateModelInput!, $files: [FileUpload!]) {{ createModel(input: $input, files: $files) {{ id {LINEAGE} }} }}"),
        json!({ "input": input }),
        &[("w.safetensors".to_owned(), safetensors(4))],
    )
    .await
}

async fn model(app: &TestApp, token: &str, id: &str) -> Value {
    app.gql(
        Some(token),
        &format!("query($id: ID!) {{ model(id: $id) {{ name {LINEAGE} derivatives {{ edges {{ node {{ name }} }} }} }} }}"),
        json!({ "id": id }),
    )
    .await
    .data()["model"]
    .clone()
}

async fn update(app: &TestApp, token: &str, id: &str, input: Value) -> crate::helpers::Gql {
    app.gql(
        Some(token),
        "mutation($id: ID!, $input: UpdateModelInput!) { updateModel(id: $id, input: $input) { id } }",
        json!({ "id": id, "input": input }),
    )
    .await
}

fn names(connection: &Value) -> Vec<&str> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn models_name_their_base_and_list_their_derivatives() {
    let app = spawn_app().await;
    let owner = app.register("lineage-owner").await;
    let base = create(
        &app,
        &owner,
        json!({ "name": "llama-base", "framework": "pytorch", "version": "1.0.0" }),
    )
    .await;
    let base = base.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tuned = create(
        &app,
        &owner,
        json!({ "name": "llama-tuned", "framework": "pytorch", "version": "1.0.0",
                "baseModel": { "modelId": base, "relation": "FINETUNE" },
                "datasets": ["squad", "glue", "squad"],
                "trainingRun": "https://wandb.ai/team/project/runs/42" }),
    )
    .await;
    let created = &tuned.data()["createModel"];
    let tuned = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["baseModel"]["model"]["name"], "llama-base");
    assert_eq!(created["baseModel"]["relation"], "FINETUNE");
    assert_eq!(created["baseModel"]["reference"], Value::Null);
    assert_eq!(created["datasets"], json!(["squad", "glue"]));
    assert_eq!(
        created["trainingRun"],
        "https://wandb.ai/team/project/runs/42"
    );
    assert_eq!(
        names(&model(&app, &owner, &base).await["derivatives"]),
        ["llama-tuned"]
    );
    let filtered = app
        .gql(
            Some(&owner),
            "query($b: ID!) { models(filter: { baseModel: $b }) { edges { node { name } } } }",
            json!({ "b": base }),
        )
        .await;
    assert_eq!(names(&filtered.data()["models"]), ["llama-tuned"]);

    // A base must be a model the caller may see; a model cannot be made from itself or from
    // its own derivatives.
    let stranger = app.register("lineage-stranger").await;
    let theirs = create(
        &app,
        &stranger,
        json!({ "name": "copy", "framework": "pytorch", "version": "1.0.0", "baseModel": { "modelId": base } }),
    )
    .await;
    assert_eq!(theirs.code(), "BAD_USER_INPUT");
    assert_eq!(theirs.extensions()["field"], "baseModel.modelId");
    for (id, base_id) in [(&base, &tuned), (&tuned, &tuned)] {
        let cycle = update(
            &app,
            &owner,
            id,
            json!({ "baseModel": { "modelId": base_id } }),
        )
        .await;
        assert_eq!(cycle.code(), "BAD_USER_INPUT", "{id} from {base_id}");
        assert_eq!(cycle.extensions()["field"], "baseModel.modelId");
    }
    for (input, field) in [
        (
            json!({ "trainingRun": "javascript:alert(1)" }),
            "trainingRun",
        ),
        (json!({ "datasets": ["two\nlines"] }), "datasets"),
        (
            json!({ "baseModel": { "modelId": base, "reference": "x/y" } }),
            "baseModel",
        ),
    ] {
        let refused = update(&app, &owner, &tuned, input).await;
        assert_eq!(refused.extensions()["field"], field);
    }

    // Changed to an external base, then back; a deleted base stays as a reference.
    update(
        &app,
        &owner,
        &tuned,
        json!({ "baseModel": { "reference": "meta-llama/Llama-3.1-8B", "relation": "ADAPTER" }, "trainingRun": "" }),
    )
    .await
    .data();
    let read = model(&app, &owner, &tuned).await;
    assert_eq!(
        read["baseModel"],
        json!({ "model": null, "reference": "meta-llama/Llama-3.1-8B", "relation": "ADAPTER" })
    );
    assert_eq!(read["trainingRun"], Value::Null);
    assert_eq!(read["datasets"], json!(["squad", "glue"]));
    assert!(names(&model(&app, &owner, &base).await["derivatives"]).is_empty());
    update(
        &app,
        &owner,
        &tuned,
        json!({ "baseModel": { "modelId": base, "relation": "QUANTIZED" } }),
    )
    .await
    .data();
    let deleted = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { deleteModel(id: $id) }",
            json!({ "id": base }),
        )
        .await;
    assert_eq!(deleted.data()["deleteModel"], true);
    assert_eq!(
        model(&app, &owner, &tuned).await["baseModel"],
        json!({ "model": null, "reference": "lineage-owner/llama-base", "relation": "QUANTIZED" })
    );
}

#[tokio::test]
async fn the_model_card_fills_the_lineage_left_out() {
    let app = spawn_app().await;
    let owner = app.register("card-owner").await;
    let base = create(
        &app,
        &owner,
        json!({ "name": "Base Model", "framework": "pytorch", "version": "1.0.0" }),
    )
    .await;
    let base = base.data()["createModel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let query = format!(
        "mutation($input: CreateModelInput!, $files: [FileUpload!]) {{ createModel(input: $input, files: $files) {{ {LINEAGE} }} }}"
    );
    let with_card = |name: &str, card: &str| {
        let files = vec![
            ("README.md".to_owned(), card.as_bytes().to_vec()),
            ("w.safetensors".to_owned(), safetensors(5)),
        ];
        let mut input = json!({ "name": name, "framework": "pytorch", "version": "1.0.0" });
        if name == "no-lineage" {
            input["baseModel"] = json!({});
            input["datasets"] = json!([]);
        }
        let (app, owner, query) = (&app, owner.clone(), query.clone());
        async move {
            app.upload_files(Some(&owner), &query, json!({ "input": input }), &files)
                .await
        }
    };
    // `owner/slug` of a model here is linked; anything else is a reference.
    let local = with_card(
        "quantised",
        "---\nbase_model: card-owner/Base-Model\nbase_model_relation: quantized\ndatasets:\n  - wikitext\n  - c4\n---\n# Quantised\n",
    )
    .await;
    let local = &local.data()["createModel"];
    assert_eq!(local["baseModel"]["model"]["id"], base.as_str());
    assert_eq!(local["baseModel"]["relation"], "QUANTIZED");
    assert_eq!(local["datasets"], json!(["wikitext", "c4"]));
    let external = with_card(
        "adapter",
        "---\nbase_model:\n  - mistralai/Mistral-7B-v0.3\ndatasets: squad\n---\n",
    )
    .await;
    let external = &external.data()["createModel"];
    assert_eq!(
        external["baseModel"],
        json!({ "model": null, "reference": "mistralai/Mistral-7B-v0.3", "relation": null })
    );
    assert_eq!(external["datasets"], json!(["squad"]));
    // What the uploader gave, even nothing, is not replaced by the card.
    let none = with_card("no-lineage", "---\nbase_model: x/y\ndatasets: squad\n---\n").await;
    let none = &none.data()["createModel"];
    assert_eq!(none["baseModel"], Value::Null);
    assert_eq!(none["datasets"], json!([]));
}

#[tokio::test]
async fn a_repository_takes_its_lineage_from_its_first_commit_s_card() {
    use base64::Engine;
    let app = spawn_app().await;
    let owner = app.register("hf-lineage").await;
    let token = app
        .gql(
            Some(&owner),
            "mutation { createApiToken(input: { name: \"hf\", scopes: [READ, WRITE] }) { token } }",
            json!({}),
        )
        .await
        .data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = app
        .client
        .post(format!("{}/api/repos/create", app.base))
        .bearer_auth(&token)
        .json(&json!({ "name": "lora" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let card = "---\nbase_model: mistralai/Mistral-7B-v0.3\nbase_model_relation: adapter\ndatasets: [squad]\n---\n# LoRA\n";
    let lines = [
        json!({ "key": "header", "value": { "summary": "first" } }),
        json!({ "key": "file", "value": { "path": "README.md", "encoding": "base64",
            "content": base64::engine::general_purpose::STANDARD.encode(card) } }),
    ];
    let committed = app
        .client
        .post(format!(
            "{}/api/models/hf-lineage/lora/commit/main",
            app.base
        ))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(
            lines
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        committed.status(),
        200,
        "{}",
        committed.text().await.unwrap()
    );
    let listed = app
        .gql(
            Some(&owner),
            &format!("{{ models(filter: {{ owner: \"hf-lineage\" }}) {{ edges {{ node {{ {LINEAGE} }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        listed.data()["models"]["edges"][0]["node"],
        json!({ "baseModel": { "model": null, "reference": "mistralai/Mistral-7B-v0.3", "relation": "ADAPTER" },
                "datasets": ["squad"], "trainingRun": null })
    );
}

#[tokio::test]
async fn two_links_made_at_once_cannot_close_a_cycle() {
    let app = spawn_app().await;
    let owner = app.register("lineage-racer").await;
    for round in 0..6 {
        let mut ids = Vec::new();
        for side in ["a", "b"] {
            let made = create(
                &app,
                &owner,
                json!({ "name": format!("race-{round}-{side}"), "framework": "pytorch", "version": "1.0.0" }),
            )
            .await;
            ids.push(
                made.data()["createModel"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let (a, b) = (&ids[0], &ids[1]);
        let (one, other) = tokio::join!(
            update(&app, &owner, a, json!({ "baseModel": { "modelId": b } })),
            update(&app, &owner, b, json!({ "baseModel": { "modelId": a } })),
        );
        let mut codes = [one.code_or_ok(), other.code_or_ok()];
        codes.sort_unstable();
        assert_eq!(codes, ["BAD_USER_INPUT", "OK"], "round {round}");
    }
}
