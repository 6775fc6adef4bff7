//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, as Apollo Client and
//! `graphql-ws` speak it) at `/graphql`: authenticated from the init payload, the same policy
//! as HTTP, fed by the change events, across replicas; and automatic persisted queries over
//! GET and POST.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use modelhub::entities::{enums::InspectionStatus, model_version};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use sha2::Digest;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::helpers::{TestApp, safetensors, spawn_app, spawn_with_cache};

/// How long a test waits for a message it expects.
const WAIT: Duration = Duration::from_secs(10);

/// A `graphql-transport-ws` client connection, and the subscriptions it stopped (whose
/// `complete` the server confirms).
struct Socket(
    WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    std::collections::HashSet<String>,
);

/// How a connection attempt ended.
#[derive(Debug)]
enum Connected {
    Acked(Box<Socket>),
    /// Closed by the server, with its close code and reason.
    Closed(u16, String),
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Socket")
    }
}

impl Socket {
    async fn connect(app: &TestApp, payload: Value) -> Connected {
        let mut request = format!("ws://{}/graphql", app.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        let mut socket = Socket(ws, Default::default());
        socket
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        match socket.next_raw().await {
            Ok(message) => {
                assert_eq!(message["type"], "connection_ack", "{message}");
                Connected::Acked(Box::new(socket))
            }
            Err(closed) => Connected::Closed(closed.0, closed.1),
        }
    }

    async fn acked(app: &TestApp, token: Option<&str>) -> Socket {
        let payload = match token {
            Some(token) => json!({ "authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        match Self::connect(app, payload).await {
            Connected::Acked(socket) => *socket,
            other => panic!("not acknowledged: {other:?}"),
        }
    }

    async fn send(&mut self, message: Value) {
        self.0
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// Waits until the subscriptions started before are live. Subscriptions start lazily,
    /// when the server first polls them, and each takes the live events from then on; a
    /// probe started after them that needs the database to answer is answered only after a
    /// round in which the server polled every subscription.
    async fn settle(&mut self, probe_version: &str) {
        self.subscribe("probe", VERSION_INSPECTED, json!({ "id": probe_version }))
            .await;
        self.data_of("probe").await;
        self.stop("probe").await;
    }

    /// Stops subscription `id`.
    async fn stop(&mut self, id: &str) {
        self.1.insert(id.to_owned());
        self.send(json!({ "id": id, "type": "complete" })).await;
    }

    /// The next protocol message (answering pings), or how the connection closed.
    async fn next_raw(&mut self) -> Result<Value, (u16, String)> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("a message within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    if message["type"] == "complete"
                        && let Some(id) = message["id"].as_str()
                        && self.1.remove(id)
                    {
                        continue;
                    }
                    return Ok(message);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new())));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err((1006, e.to_string())),
                None => return Err((1006, "ended".into())),
            }
        }
    }

    /// The next message, which must be about subscription `id`.
    async fn next_of(&mut self, id: &str) -> Value {
        let message = self.next_raw().await.expect("an open connection");
        assert_eq!(message["id"], id, "{message}");
        message
    }

    /// The next message's data, which must be a `next` of subscription `id`.
    async fn data_of(&mut self, id: &str) -> Value {
        let message = self.next_of(id).await;
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"]["errors"].is_null(), "{message}");
        message["payload"]["data"].clone()
    }

    /// The first error's code of subscription `id`'s next message (an `error` or a `next`
    /// with errors).
    async fn error_of(&mut self, id: &str) -> String {
        let message = self.next_of(id).await;
        let errors = match message["type"].as_str() {
            Some("error") => message["payload"].clone(),
            Some("next") => {
                // The subscription ends with it.
                let end = self.next_of(id).await;
                assert_eq!(end["type"], "complete", "{end}");
                message["payload"]["errors"].clone()
            }
            _ => panic!("not an error: {message}"),
        };
        errors[0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {message}"))
            .to_owned()
    }
}

const VERSION_INSPECTED: &str = "subscription($id: ID!) { versionInspected(versionId: $id) { id version inspection { status } } }";
const MODEL_EVENTS: &str = "subscription($id: ID!) { modelEvents(modelId: $id) { type modelId model { name approvalStatus } version { version } payload } }";
const APPROVAL_QUEUE: &str =
    "subscription { approvalQueue { type modelId model { name approvalStatus } } }";

/// Creates a model with one version; returns (model id, version id).
async fn model_with_version(app: &TestApp, token: &str, name: &str) -> (String, String) {
    let created = app
        .create_model(
            token,
            json!({ "name": name, "framework": "pytorch", "version": "1.0.0" }),
            "w.safetensors",
            safetensors(8),
        )
        .await;
    let model = &created.data()["createModel"];
    let id = model["id"].as_str().unwrap().to_owned();
    let version = app
        .gql(
            Some(token),
            "query($id: ID!) { model(id: $id) { currentVersion { id } } }",
            json!({ "id": id }),
        )
        .await;
    let version = version.data()["model"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, version)
}

#[tokio::test]
async fn subscriptions_follow_inspections_and_model_events() {
    // The database is edited behind the server's back: without the caches it is authoritative.
    let app = spawn_with_cache(0).await;
    let owner = app.register("live-owner").await;
    let (model_id, version_id) = model_with_version(&app, &owner, "live").await;
    let (_, probe) = model_with_version(&app, &owner, "probe").await;
    let mut socket = Socket::acked(&app, Some(&owner)).await;

    // Already inspected: the version comes at once.
    socket
        .subscribe("1", VERSION_INSPECTED, json!({ "id": version_id }))
        .await;
    let first = socket.data_of("1").await;
    assert_eq!(first["versionInspected"]["id"], version_id.as_str());
    assert_eq!(first["versionInspected"]["inspection"]["status"], "SAFE");
    socket.stop("1").await;

    // A version inspected under older rules waits for its inspection.
    let marked = model_version::Entity::update_many()
        .col_expr(
            model_version::Column::InspectionStatus,
            Expr::value(InspectionStatus::Pending),
        )
        .col_expr(
            model_version::Column::InspectionRules,
            Expr::value(None::<String>),
        )
        .filter(model_version::Column::Id.eq(uuid::Uuid::parse_str(&version_id).unwrap()))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(marked.rows_affected, 1);
    socket
        .subscribe("2", VERSION_INSPECTED, json!({ "id": version_id }))
        .await;
    socket
        .subscribe("3", MODEL_EVENTS, json!({ "id": model_id }))
        .await;
    socket.settle(&probe).await;
    // The version's subscription waits; the model's sees the alias move.
    let set = app
        .gql(
            Some(&owner),
            "mutation($m: ID!, $v: ID!) { setAlias(modelId: $m, alias: \"champion\", versionId: $v) { name } }",
            json!({ "m": model_id, "v": version_id }),
        )
        .await;
    set.data();
    let moved = socket.data_of("3").await;
    assert_eq!(moved["modelEvents"]["type"], "ALIAS_MOVED");
    assert_eq!(moved["modelEvents"]["modelId"], model_id.as_str());
    assert_eq!(moved["modelEvents"]["payload"]["data"]["alias"], "champion");
    modelhub::services::inspection::reinspect(&app.state, false)
        .await
        .unwrap();
    // The re-inspection's event reaches both.
    let mut inspected = Vec::new();
    for _ in 0..2 {
        let message = socket.next_raw().await.unwrap();
        assert_eq!(message["type"], "next", "{message}");
        inspected.push(message);
    }
    inspected.sort_by_key(|m| m["id"].as_str().unwrap().to_owned());
    assert_eq!(
        inspected[0]["payload"]["data"]["versionInspected"]["inspection"]["status"],
        "SAFE"
    );
    assert_eq!(
        inspected[1]["payload"]["data"]["modelEvents"]["type"],
        "VERSION_INSPECTED"
    );

    // A new version: created, then inspected, in that order, with the version as it is now.
    app.upload(
        Some(&owner),
        "mutation($id: ID!, $file: Upload!) { createModelVersion(modelId: $id, input: { version: \"1.1.0\" }, file: $file) { id } }",
        json!({ "id": model_id }),
        "w.safetensors",
        safetensors(16),
    )
    .await
    .data();
    let created = socket.data_of("3").await;
    assert_eq!(created["modelEvents"]["type"], "VERSION_CREATED");
    assert_eq!(created["modelEvents"]["version"]["version"], "1.1.0");
    let inspected = socket.data_of("3").await;
    assert_eq!(inspected["modelEvents"]["type"], "VERSION_INSPECTED");

    // Queries and mutations belong on HTTP.
    socket
        .subscribe("4", "query { models { totalCount } }", json!({}))
        .await;
    assert_eq!(socket.error_of("4").await, "OPERATION_NOT_SUPPORTED");
    socket
        .subscribe(
            "5",
            "mutation { revokeApiToken(id: \"00000000-0000-0000-0000-000000000000\") }",
            json!({}),
        )
        .await;
    assert_eq!(socket.error_of("5").await, "OPERATION_NOT_SUPPORTED");
}

#[tokio::test]
async fn who_may_subscribe_to_what_and_for_how_long() {
    let app = spawn_app().await;
    let owner = app.register("queue-owner").await;
    let stranger = app.register("queue-stranger").await;
    let admin = app.admin("queue-admin").await;
    let (model_id, version_id) = model_with_version(&app, &owner, "queued").await;

    // A bad credential is refused at the handshake; none at all is an anonymous reader.
    match Socket::connect(&app, json!({ "authorization": "Bearer not-a-token" })).await {
        // 1002 (graphql-ws clients give up rather than retry), with the reason.
        Connected::Closed(code, reason) => {
            assert_eq!(code, 1002, "{reason}");
            assert_eq!(reason, "invalid access token");
        }
        Connected::Acked(_) => panic!("a bad token was acknowledged"),
    }
    for token in [None, Some(stranger.as_str())] {
        let mut socket = Socket::acked(&app, token).await;
        socket
            .subscribe("1", MODEL_EVENTS, json!({ "id": model_id }))
            .await;
        assert_eq!(socket.error_of("1").await, "NOT_FOUND");
        socket
            .subscribe("2", VERSION_INSPECTED, json!({ "id": version_id }))
            .await;
        assert_eq!(socket.error_of("2").await, "NOT_FOUND");
        socket.subscribe("3", APPROVAL_QUEUE, json!({})).await;
        let code = socket.error_of("3").await;
        assert!(code == "FORBIDDEN" || code == "UNAUTHENTICATED", "{code}");
    }
    // The token may also come in the upgrade request's header, or as `authToken`.
    let mut owner_socket = match Socket::connect(&app, json!({ "authToken": owner })).await {
        Connected::Acked(socket) => *socket,
        other => panic!("{other:?}"),
    };
    owner_socket.subscribe("q", APPROVAL_QUEUE, json!({})).await;
    assert_eq!(owner_socket.error_of("q").await, "FORBIDDEN");
    owner_socket
        .subscribe("m", MODEL_EVENTS, json!({ "id": model_id }))
        .await;
    owner_socket.settle(&version_id).await;

    let mut admin_socket = Socket::acked(&app, Some(&admin)).await;
    admin_socket.subscribe("q", APPROVAL_QUEUE, json!({})).await;
    admin_socket.settle(&version_id).await;
    // The administrator sees the queue move (a private model included); the owner sees
    // their model's side of it.
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
        json!({ "id": model_id }),
    )
    .await
    .data();
    let requested = admin_socket.data_of("q").await;
    assert_eq!(requested["approvalQueue"]["type"], "PUBLICATION_REQUESTED");
    assert_eq!(requested["approvalQueue"]["model"]["name"], "queued");
    let mine = owner_socket.data_of("m").await;
    assert_eq!(mine["modelEvents"]["type"], "PUBLICATION_REQUESTED");
    assert_eq!(mine["modelEvents"]["model"]["approvalStatus"], "PENDING");

    // Once the owner is disabled, their subscription ends at its next event.
    let owner_id = app
        .gql(Some(&owner), "query { me { id } }", json!({}))
        .await
        .data()["me"]["id"]
        .clone();
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { disableUser(userId: $id) { id } }",
        json!({ "id": owner_id }),
    )
    .await
    .data();
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { approveModel(modelId: $id) { id } }",
        json!({ "id": model_id }),
    )
    .await
    .data();
    let approved = admin_socket.data_of("q").await;
    assert_eq!(approved["approvalQueue"]["type"], "PUBLICATION_APPROVED");
    assert_eq!(
        approved["approvalQueue"]["model"]["approvalStatus"],
        "APPROVED"
    );
    let ended = owner_socket.next_raw().await;
    let closed = match ended {
        Ok(message) if message["type"] == "next" => {
            let code = message["payload"]["errors"][0]["extensions"]["code"].clone();
            assert!(
                code == "UNAUTHENTICATED" || code == "FORBIDDEN",
                "{message}"
            );
            owner_socket.next_raw().await
        }
        other => other,
    };
    match closed {
        Ok(message) => assert_eq!(message["type"], "complete", "{message}"),
        Err((code, reason)) => panic!("closed instead of completed: {code} {reason}"),
    }

    // Now public, the model's events reach anonymous subscribers.
    let mut anonymous = Socket::acked(&app, None).await;
    anonymous
        .subscribe("a", MODEL_EVENTS, json!({ "id": model_id }))
        .await;
    anonymous.settle(&version_id).await;
    app.gql(
        Some(&admin),
        "mutation($m: ID!, $v: ID!) { setAlias(modelId: $m, alias: \"stable\", versionId: $v) { name } }",
        json!({ "m": model_id, "v": version_id }),
    )
    .await
    .data();
    let moved = anonymous.data_of("a").await;
    assert_eq!(moved["modelEvents"]["type"], "ALIAS_MOVED");
}

#[tokio::test]
async fn a_subscription_on_one_replica_sees_events_written_on_another() {
    let app = spawn_app().await;
    let owner = app.register("replica-owner").await;
    let (model_id, version_id) = model_with_version(&app, &owner, "replicated").await;
    // Started after those events, the replica's feed begins after them.
    let other = app.replica().await;
    let mut socket = Socket::acked(&other, Some(&owner)).await;
    socket
        .subscribe("1", MODEL_EVENTS, json!({ "id": model_id }))
        .await;
    socket.settle(&version_id).await;
    app.gql(
        Some(&owner),
        "mutation($m: ID!, $v: ID!) { setAlias(modelId: $m, alias: \"prod-a\", versionId: $v) { name } }",
        json!({ "m": model_id, "v": version_id }),
    )
    .await
    .data();
    let moved = socket.data_of("1").await;
    assert_eq!(moved["modelEvents"]["type"], "ALIAS_MOVED");
    assert_eq!(moved["modelEvents"]["payload"]["data"]["alias"], "prod-a");
}

/// Apollo's APQ extension for `query`.
fn persisted(query: &str) -> Value {
    let hash = hex(&sha2::Sha256::digest(query.as_bytes()));
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn persisted_queries_are_registered_on_a_miss_and_used_by_hash() {
    let app = spawn_app().await;
    let owner = app.register("apq-owner").await;
    model_with_version(&app, &owner, "apq").await;
    let query = "query Mine { models(first: 5) { totalCount edges { node { name } } } }";
    let extensions = persisted(query);
    let get = async |extensions: &Value, query: Option<&str>| {
        let mut params = vec![("extensions", extensions.to_string())];
        if let Some(query) = query {
            params.push(("query", query.to_owned()));
        }
        let response = app
            .client
            .get(format!("{}/graphql", app.base))
            .query(&params)
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let post = async |body: Value| {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&owner)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };

    // The hash alone: not known yet, answered as Apollo Client expects (it then sends both).
    let (status, missed) = get(&extensions, None).await;
    assert_eq!(status, 200, "{missed}");
    assert_eq!(missed["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(
        missed["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let (status, registered) = get(&extensions, Some(query)).await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["data"]["models"]["totalCount"], 1);
    // From now on the hash is enough, on GET and on POST.
    let (status, hit) = get(&extensions, None).await;
    assert_eq!(status, 200);
    assert_eq!(hit, registered);
    let (status, hit) = post(json!({ "extensions": extensions })).await;
    assert_eq!(status, 200);
    assert_eq!(hit, registered);

    // POST registers too; a query whose hash is not the one given is refused.
    let other = "{ me { username } }";
    let (_, missed) = post(json!({ "extensions": persisted(other) })).await;
    assert_eq!(missed["errors"][0]["message"], "PersistedQueryNotFound");
    let (_, registered) = post(json!({ "query": other, "extensions": persisted(other) })).await;
    assert_eq!(registered["data"]["me"]["username"], "apq-owner");
    let (_, hit) = post(json!({ "extensions": persisted(other) })).await;
    assert_eq!(hit, registered);
    let (status, wrong) = post(json!({ "query": query, "extensions": persisted(other) })).await;
    assert_eq!(status, 400, "{wrong}");
    assert_eq!(wrong["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // An upload too: a miss is answered before its file is read, and the client sends the
    // query with the file again.
    let create = "mutation($input: CreateModelInput!, $file: Upload!) { createModel(input: $input, file: $file) { name } }";
    let upload = async |name: &str, with_query: bool| {
        let mut operations = json!({
            "variables": { "input": { "name": name, "framework": "pytorch", "version": "1.0.0" }, "file": null },
            "extensions": persisted(create),
        });
        if with_query {
            operations["query"] = json!(create);
        }
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(safetensors(8)).file_name("w.safetensors"),
            );
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&owner)
            .multipart(form)
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()
    };
    let missed = upload("apq-upload", false).await;
    assert_eq!(
        missed["errors"][0]["message"], "PersistedQueryNotFound",
        "{missed}"
    );
    assert_eq!(app.count_rows("models").await, 1);
    let sent = upload("apq-upload", true).await;
    assert_eq!(sent["data"]["createModel"]["name"], "apq-upload", "{sent}");
    let hit = upload("apq-upload-2", false).await;
    assert_eq!(hit["data"]["createModel"]["name"], "apq-upload-2", "{hit}");

    // A persisted mutation still may not run over GET.
    let mutation = "mutation { revokeApiToken(id: \"00000000-0000-0000-0000-000000000000\") }";
    let (_, _) = post(json!({ "query": mutation, "extensions": persisted(mutation) })).await;
    let (status, refused) = get(&persisted(mutation), None).await;
    assert!(status == 405 || status == 400, "{status} {refused}");
    assert!(refused["data"].is_null(), "{refused}");
}
