//! The playground in a real browser: headless Chromium loads `/playground` from the server,
//! the docs explorer lists the schema's `Query` type (GraphiQL's introspection query passes
//! the limits), and a query typed into the editor runs and shows its answer. The browser is
//! driven over the DevTools protocol.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

use crate::helpers::{TestApp, safetensors, spawn_app, test_chromium};

/// How long the browser may take for any one step.
const STEP: Duration = Duration::from_secs(30);

/// A child process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium with one page, killed when dropped.
struct Browser {
    _process: Killed,
    _profile: tempfile::TempDir,
    page: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Browser {
    async fn launch(binary: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let process = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Killed)
            .unwrap();
        let port = devtools_port(profile.path()).await;
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page_url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_owned();
        let (page, _) = connect_async(page_url).await.unwrap();
        Self {
            _process: process,
            _profile: profile,
            page,
            next_id: 0,
        }
    }

    /// Sends a DevTools command and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(command.to_string()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(STEP, async {
            loop {
                let Some(Ok(Message::Text(text))) = self.page.next().await else {
                    panic!("the browser closed the connection");
                };
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["id"] == id {
                    return message;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method} had no answer"));
        assert!(answer["error"].is_null(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Evaluates JavaScript in the page (awaiting a promise) and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy in the page and returns it (`true` for an object);
    /// `what` names it in the failure.
    async fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let check = format!(
            "new Promise((resolve, reject) => {{
                const deadline = Date.now() + {ms};
                const poll = () => {{
                    let value;
                    try {{ value = ({expression}); }} catch (e) {{ value = null; }}
                    if (value) return resolve(typeof value === 'object' ? true : value);
                    if (Date.now() > deadline) return resolve(null);
                    setTimeout(poll, 20);
                }};
                poll();
            }})",
            ms = STEP.as_millis() / 2
        );
        let value = self.eval(&check).await;
        assert!(!value.is_null(), "the playground never showed {what}");
        value
    }
}

/// The DevTools port Chromium writes into its profile once it listens.
async fn devtools_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    tokio::time::timeout(STEP, async {
        loop {
            if let Ok(text) = tokio::fs::read_to_string(&file).await
                && let Some(port) = text.lines().next().and_then(|l| l.parse().ok())
            {
                return port;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("Chromium did not open its DevTools port")
}

/// One public model, so that the typed query has something to find.
async fn public_model(app: &TestApp) {
    let owner = app.register("playground-owner").await;
    let admin = app.admin("playground-admin").await;
    let created = app
        .create_model(
            &owner,
            json!({ "name": "shown-in-the-playground", "framework": "pytorch", "version": "v1.0.0" }),
            "w.safetensors",
            safetensors(2),
        )
        .await;
    let id = created.data()["createModel"]["id"].clone();
    for (token, mutation) in [
        (
            &owner,
            "mutation($id: ID!) { requestPublication(modelId: $id) { id } }",
        ),
        (
            &admin,
            "mutation($id: ID!) { approveModel(modelId: $id) { id } }",
        ),
    ] {
        app.gql(Some(token), mutation, json!({ "id": id }))
            .await
            .data();
    }
}

#[tokio::test]
async fn the_playground_shows_the_docs_and_runs_a_typed_query_in_a_browser() {
    let Some(chromium) = test_chromium("the_playground_shows_the_docs") else {
        return;
    };
    let app = spawn_app().await;
    public_model(&app).await;
    let mut browser = Browser::launch(&chromium).await;
    browser
        .call(
            "Page.navigate",
            json!({ "url": format!("{}/playground", app.base) }),
        )
        .await;
    browser
        .wait_for(
            "its editor",
            "document.querySelector('.graphiql-query-editor .CodeMirror')",
        )
        .await;

    // The docs explorer: filled from the introspection query the page sent on load.
    browser
        .wait_for(
            "the docs button",
            "(() => { const b = document.querySelector('[aria-label=\"Show Documentation Explorer\"]'); if (b) b.click(); return b; })() && true",
        )
        .await;
    let root = browser
        .wait_for(
            "the Query type in the docs explorer",
            "[...document.querySelectorAll('.graphiql-doc-explorer-section-content > div')].map(e => e.textContent).find(t => t === 'query: Query')",
        )
        .await;
    assert_eq!(root, "query: Query");

    // A query typed into the editor (as keyboard input), run with the execute button.
    let query = "{ models(first: 5) { totalCount edges { node { name } } } }";
    browser
        .eval("(() => { const cm = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror; cm.setValue(''); cm.focus(); return true; })()")
        .await;
    browser
        .call("Input.insertText", json!({ "text": query }))
        .await;
    let typed = browser
        .eval("document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()")
        .await;
    assert_eq!(typed, query, "the editor holds what was typed");
    browser
        .eval("document.querySelector('.graphiql-execute-button').click(), true")
        .await;
    let shown = browser
        .wait_for(
            "the answer",
            "(() => { const v = document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue(); return v.includes('totalCount') && v; })()",
        )
        .await;
    let answer: Value = serde_json::from_str(shown.as_str().unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({ "data": { "models": { "totalCount": 1, "edges": [{ "node": { "name": "shown-in-the-playground" } }] } } })
    );
}
