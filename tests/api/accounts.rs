//! Accounts: registration, login, access tokens, API tokens, disabled users.

use chrono::{Duration, Utc};
use modelhub::entities::enums::Role;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with_cache};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { token expiresAt user { id username email role } } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { token user { username } } }";
const ME: &str = "{ me { id username email role } }";

fn registration(username: &str, email: &str, password: &str) -> serde_json::Value {
    json!({ "i": { "username": username, "email": email, "password": password } })
}

#[tokio::test]
async fn register_login_and_me_round_trip() {
    let app = spawn_app().await;
    let registered = app
        .gql(
            None,
            REGISTER,
            registration("Alice", "Alice@Example.com", "correct horse battery"),
        )
        .await;
    let user = &registered.data()["register"]["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "USER");

    let login = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "username": "alice", "password": "correct horse battery" } }),
        )
        .await;
    let token = login.data()["login"]["token"].as_str().unwrap().to_owned();
    let by_email = app
        .gql(None, LOGIN, json!({ "i": { "username": "ALICE@example.com", "password": "correct horse battery" } }))
        .await;
    assert_eq!(by_email.data()["login"]["user"]["username"], "alice");

    let me = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me.data()["me"]["username"], "alice");
    assert_eq!(me.data()["me"]["id"], user["id"]);
    let anonymous = app.gql(None, ME, json!({})).await;
    assert!(anonymous.data()["me"].is_null());
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("bob").await;
    let wrong = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "username": "bob", "password": "not the password" } }),
        )
        .await;
    let unknown = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "username": "nobody", "password": "not the password" } }),
        )
        .await;
    assert_eq!(wrong.code(), "UNAUTHENTICATED");
    assert_eq!(wrong.extensions()["reason"], "INVALID_CREDENTIALS");
    assert_eq!(wrong.body["errors"], unknown.body["errors"]);
}

#[tokio::test]
async fn duplicate_username_or_email_is_a_conflict_and_writes_nothing() {
    let app = spawn_app().await;
    app.register("carol").await;
    let users_before = app.count_rows("users").await;
    let same_name = app
        .gql(
            None,
            REGISTER,
            registration("CAROL", "other@example.com", "correct horse battery"),
        )
        .await;
    assert_eq!(same_name.code(), "CONFLICT");
    assert!(
        same_name.message().starts_with("username"),
        "{}",
        same_name.message()
    );
    let same_email = app
        .gql(
            None,
            REGISTER,
            registration("carol2", "carol@example.com", "correct horse battery"),
        )
        .await;
    assert_eq!(same_email.code(), "CONFLICT");
    assert!(
        same_email.message().starts_with("email"),
        "{}",
        same_email.message()
    );
    assert_eq!(app.count_rows("users").await, users_before);
}

#[tokio::test]
async fn weak_empty_or_malformed_registrations_are_bad_input() {
    let app = spawn_app().await;
    let cases = [
        (registration("dave", "dave@example.com", ""), "password"),
        (
            registration("dave", "dave@example.com", "short"),
            "password",
        ),
        (
            registration("dave", "dave@example.com", "password1"),
            "password",
        ),
        (
            registration("dave", "dave@example.com", "aaaaaaaaaaaa"),
            "password",
        ),
        (
            registration("dave", "dave@example.com", "dave-is-great"),
            "password",
        ),
        (
            registration("d", "dave@example.com", "correct horse battery"),
            "username",
        ),
        (
            registration("dave/../x", "dave@example.com", "correct horse battery"),
            "username",
        ),
        (
            registration("dave", "not-an-email", "correct horse battery"),
            "email",
        ),
    ];
    for (variables, field) in cases {
        let answer = app.gql(None, REGISTER, variables.clone()).await;
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{variables}");
        assert_eq!(answer.extensions()["field"], field, "{variables}");
    }
    assert_eq!(app.count_rows("users").await, 0);
}

#[tokio::test]
async fn malformed_and_expired_access_tokens_are_refused() {
    let app = spawn_app().await;
    let garbage = app.gql(Some("not-a-jwt"), ME, json!({})).await;
    assert_eq!(garbage.code(), "UNAUTHENTICATED");
    assert_eq!(garbage.extensions()["reason"], "INVALID_TOKEN");

    let token = app.register("erin").await;
    let tampered = format!("{}x", token);
    assert_eq!(
        app.gql(Some(&tampered), ME, json!({})).await.extensions()["reason"],
        "INVALID_TOKEN"
    );

    let me = app.gql(Some(&token), ME, json!({})).await;
    let id: uuid::Uuid = me.data()["me"]["id"].as_str().unwrap().parse().unwrap();
    let expired = app
        .state
        .jwt
        .issue_access(id, Role::User, 0, Utc::now() - Duration::seconds(5))
        .unwrap();
    let answer = app.gql(Some(&expired), ME, json!({})).await;
    assert_eq!(answer.code(), "UNAUTHENTICATED");
    assert_eq!(answer.extensions()["reason"], "EXPIRED_TOKEN");
}

const CREATE_TOKEN: &str = "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token apiToken { id name scopes expiresAt } } }";

#[tokio::test]
async fn api_tokens_work_until_revoked() {
    let app = spawn_app().await;
    let session = app.register("frank").await;
    let created = app
        .gql(
            Some(&session),
            CREATE_TOKEN,
            json!({ "i": { "name": "ci", "scopes": ["READ", "WRITE"], "expiresInDays": 7 } }),
        )
        .await;
    let secret = created.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = created.data()["createApiToken"]["apiToken"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("mh_"));
    assert_eq!(
        created.data()["createApiToken"]["apiToken"]["scopes"],
        json!(["READ", "WRITE"])
    );

    let me = app.gql(Some(&secret), ME, json!({})).await;
    assert_eq!(me.data()["me"]["username"], "frank");
    let listed = app
        .gql(
            Some(&session),
            "{ me { apiTokens { id name lastUsedAt } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed.data()["me"]["apiTokens"][0]["id"], id.as_str());
    assert!(!listed.data()["me"]["apiTokens"][0]["lastUsedAt"].is_null());

    // The secret is stored as its SHA-256 (see `api_token_secrets_are_stored_and_checked_as_their_sha256`).
    let stored = stored_hash(&app, &id).await;
    assert_eq!(stored, crate::helpers::sha256_hex(secret.as_bytes()));

    let revoked = app
        .gql(
            Some(&session),
            "mutation($id: ID!) { revokeApiToken(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(revoked.data()["revokeApiToken"], true);
    let after = app.gql(Some(&secret), ME, json!({})).await;
    assert_eq!(after.code(), "UNAUTHENTICATED");
    assert_eq!(after.extensions()["reason"], "REVOKED_TOKEN");

    let unknown = app.gql(Some("mh_not-a-real-token"), ME, json!({})).await;
    assert_eq!(unknown.extensions()["reason"], "INVALID_TOKEN");
}

/// The `token_hash` stored for API token `id`.
async fn stored_hash(app: &crate::helpers::TestApp, id: &str) -> String {
    use modelhub::entities::api_token;
    use sea_orm::EntityTrait;
    api_token::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no api_tokens row {id}"))
        .token_hash
}

/// Overwrites the `token_hash` stored for API token `id`, behind the server's back.
async fn set_stored_hash(app: &crate::helpers::TestApp, id: &str, hash: &str) {
    use modelhub::entities::api_token;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let updated = api_token::Entity::update_many()
        .col_expr(api_token::Column::TokenHash, Expr::value(hash))
        .filter(api_token::Column::Id.eq(id.parse::<uuid::Uuid>().unwrap()))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected, 1);
}

#[tokio::test]
async fn api_token_secrets_are_stored_and_checked_as_their_sha256() {
    // The database is edited behind the server's back: without the caches it is authoritative.
    let app = spawn_with_cache(0).await;
    let session = app.register("hashed").await;
    let created = app
        .gql(
            Some(&session),
            CREATE_TOKEN,
            json!({ "i": { "name": "ci", "scopes": ["READ"] } }),
        )
        .await;
    let secret = created.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = created.data()["createApiToken"]["apiToken"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let random_part = secret.strip_prefix("mh_").unwrap();
    assert!(random_part.len() >= 40, "{secret}");

    // What is stored is the SHA-256 of the secret the user was shown (computed here
    // independently), and nothing of the secret's random part.
    let stored = stored_hash(&app, &id).await;
    assert_eq!(stored, crate::helpers::sha256_hex(secret.as_bytes()));
    assert_ne!(stored, secret);
    assert!(!stored.contains(random_part), "{stored}");
    let me = app.gql(Some(&secret), ME, json!({})).await;
    assert_eq!(me.data()["me"]["username"], "hashed");

    // A row holding the secret itself (what storing it unhashed would look like) does not
    // match: the presented secret is hashed before the lookup.
    set_stored_hash(&app, &id, &secret).await;
    let plain = app.gql(Some(&secret), ME, json!({})).await;
    assert_eq!(plain.code(), "UNAUTHENTICATED", "{:?}", plain.body);
    assert_eq!(plain.extensions()["reason"], "INVALID_TOKEN");

    // Nor does the hash of another secret, however alike.
    let mut other = secret.clone();
    let last = other.pop().unwrap();
    other.push(if last == 'A' { 'B' } else { 'A' });
    set_stored_hash(&app, &id, &crate::helpers::sha256_hex(other.as_bytes())).await;
    let wrong = app.gql(Some(&secret), ME, json!({})).await;
    assert_eq!(
        wrong.extensions()["reason"],
        "INVALID_TOKEN",
        "{:?}",
        wrong.body
    );
    // The secret that hash belongs to is let in instead: the lookup is by the SHA-256 of what
    // is presented.
    let guessed = app.gql(Some(&other), ME, json!({})).await;
    assert_eq!(guessed.data()["me"]["username"], "hashed");

    // Put back, the secret's own hash lets it in again.
    set_stored_hash(&app, &id, &crate::helpers::sha256_hex(secret.as_bytes())).await;
    let again = app.gql(Some(&secret), ME, json!({})).await;
    assert_eq!(again.data()["me"]["username"], "hashed");
    assert_eq!(
        app.gql(Some(&other), ME, json!({})).await.extensions()["reason"],
        "INVALID_TOKEN"
    );
}

#[tokio::test]
async fn api_token_scopes_and_expiry_are_enforced() {
    // The database is edited behind the server's back: without the caches it is authoritative
    // at once (with them, such a change shows within their time to live, like another replica's).
    let app = spawn_with_cache(0).await;
    let session = app.register("grace").await;
    let admin_scope = app
        .gql(
            Some(&session),
            CREATE_TOKEN,
            json!({ "i": { "name": "x", "scopes": ["ADMIN"] } }),
        )
        .await;
    assert_eq!(admin_scope.code(), "FORBIDDEN");
    let no_scope = app
        .gql(
            Some(&session),
            CREATE_TOKEN,
            json!({ "i": { "name": "x", "scopes": [] } }),
        )
        .await;
    assert_eq!(no_scope.code(), "BAD_USER_INPUT");
    let too_long = app
        .gql(
            Some(&session),
            CREATE_TOKEN,
            json!({ "i": { "name": "x", "scopes": ["READ"], "expiresInDays": 100000 } }),
        )
        .await;
    assert_eq!(too_long.extensions()["field"], "expiresInDays");

    let created = app
        .gql(
            Some(&session),
            CREATE_TOKEN,
            json!({ "i": { "name": "read-only", "scopes": ["READ"] } }),
        )
        .await;
    let secret = created.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let expires: chrono::DateTime<Utc> = created.data()["createApiToken"]["apiToken"]["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let days = (expires - Utc::now()).num_days();
    assert!(
        (89..=90).contains(&days),
        "default expiry is 90 days, got {days}"
    );

    // A token cannot mint tokens.
    let minted = app
        .gql(
            Some(&secret),
            CREATE_TOKEN,
            json!({ "i": { "name": "y", "scopes": ["READ"] } }),
        )
        .await;
    assert_eq!(minted.code(), "FORBIDDEN");

    // Expired tokens stop working.
    app.state
        .db
        .execute_unprepared("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00+00:00'")
        .await
        .unwrap();
    let expired = app.gql(Some(&secret), ME, json!({})).await;
    assert_eq!(expired.extensions()["reason"], "EXPIRED_TOKEN");
}

#[tokio::test]
async fn disabled_users_can_neither_log_in_nor_use_tokens() {
    // The database is edited behind the server's back: without the caches it is authoritative
    // at once (with them, such a change shows within their time to live, like another replica's).
    let app = spawn_with_cache(0).await;
    let session = app.register("heidi").await;
    let created = app
        .gql(
            Some(&session),
            CREATE_TOKEN,
            json!({ "i": { "name": "t", "scopes": ["READ"] } }),
        )
        .await;
    let secret = created.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.state
        .db
        .execute_unprepared("UPDATE users SET disabled = TRUE WHERE username = 'heidi'")
        .await
        .unwrap();
    for token in [&session, &secret] {
        let answer = app.gql(Some(token), ME, json!({})).await;
        assert_eq!(answer.extensions()["reason"], "ACCOUNT_DISABLED");
    }
    let login = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "username": "heidi", "password": "correct horse battery" } }),
        )
        .await;
    assert_eq!(login.code(), "UNAUTHENTICATED");
    assert_eq!(login.extensions()["reason"], "ACCOUNT_DISABLED");
    // A wrong password does not reveal that the account is disabled.
    let wrong = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "username": "heidi", "password": "wrong password!" } }),
        )
        .await;
    assert_eq!(wrong.extensions()["reason"], "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn administrators_are_created_or_promoted() {
    let app = spawn_app().await;
    app.register("ivan").await;
    let token = app.admin("ivan").await;
    let me = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me.data()["me"]["role"], "ADMIN");
    let admin_token = app
        .gql(
            Some(&token),
            CREATE_TOKEN,
            json!({ "i": { "name": "ops", "scopes": ["ADMIN"] } }),
        )
        .await;
    assert_eq!(
        admin_token.data()["createApiToken"]["apiToken"]["scopes"],
        json!(["ADMIN"])
    );
    let fresh = app.admin("judy").await;
    let me = app.gql(Some(&fresh), ME, json!({})).await;
    assert_eq!(me.data()["me"]["role"], "ADMIN");
}

#[tokio::test]
async fn a_token_cannot_revoke_tokens_stronger_than_itself_and_revocations_are_audited() {
    let app = spawn_with_cache(0).await;
    let session = app.admin("ada").await;
    let mint = |scopes: &'static str| {
        let app = &app;
        let session = session.clone();
        async move {
            let created = app
                .gql(
                    Some(&session),
                    &format!("mutation {{ createApiToken(input: {{ name: \"t\", scopes: [{scopes}] }}) {{ token apiToken {{ id }} }} }}"),
                    json!({}),
                )
                .await;
            (
                created.data()["createApiToken"]["token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                created.data()["createApiToken"]["apiToken"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        }
    };
    let (read, _) = mint("READ").await;
    let (write, write_id) = mint("READ, WRITE").await;
    let (_, admin_id) = mint("READ, WRITE, ADMIN").await;
    let revoke = "mutation($id: ID!) { revokeApiToken(id: $id) }";
    let by_read = app
        .gql(Some(&read), revoke, json!({ "id": write_id }))
        .await;
    assert_eq!(by_read.code(), "FORBIDDEN");
    let by_write = app
        .gql(Some(&write), revoke, json!({ "id": admin_id }))
        .await;
    assert_eq!(by_write.code(), "FORBIDDEN");
    // The WRITE token is still alive, and may revoke itself.
    let own = app
        .gql(Some(&write), revoke, json!({ "id": write_id }))
        .await;
    assert_eq!(own.data()["revokeApiToken"], true);
    let audit = app
        .gql(
            Some(&session),
            "{ auditLog(first: 50) { edges { node { action actor { username } } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<String> = audit.data()["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "api_token_created").count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "api_token_revoked").count(),
        1,
        "{actions:?}"
    );
}

#[tokio::test]
async fn changing_the_password_or_logging_out_everywhere_ends_every_earlier_session_and_link() {
    let app = spawn_with_cache(2).await;
    let first = app.register("mover").await;
    let login = "mutation { login(input: { username: \"mover\", password: \"correct horse battery\" }) { token } }";
    let second = app.gql(None, login, json!({})).await.data()["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = app
        .create_model(
            &first,
            json!({ "name": "linked", "framework": "test", "version": "1.0.0" }),
            "w.safetensors",
            crate::helpers::safetensors(4),
        )
        .await;
    let version_id = created.data()["createModel"]["currentVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = app.download_url(Some(&first), &version_id).await;
    let status = |url: String| {
        let app = &app;
        async move { app.client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(link.clone()).await, 200);

    // A wrong current password changes nothing.
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { token } }";
    let wrong = app
        .gql(
            Some(&first),
            change,
            json!({ "c": "not it", "n": "a brand new secret" }),
        )
        .await;
    assert_eq!(wrong.code(), "BAD_USER_INPUT");
    assert_eq!(
        app.gql(Some(&second), ME, json!({})).await.data()["me"]["username"],
        "mover"
    );

    let changed = app
        .gql(
            Some(&first),
            change,
            json!({ "c": "correct horse battery", "n": "a brand new secret" }),
        )
        .await;
    let fresh = changed.data()["changePassword"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for old in [&first, &second] {
        let refused = app.gql(Some(old), ME, json!({})).await;
        assert_eq!(refused.code(), "UNAUTHENTICATED");
        assert_eq!(refused.extensions()["reason"], "SESSION_ENDED");
    }
    assert_eq!(
        status(link).await,
        404,
        "a link made by an ended session dies with it"
    );
    assert_eq!(
        app.gql(Some(&fresh), ME, json!({})).await.data()["me"]["username"],
        "mover"
    );
    let old_password = app.gql(None, login, json!({})).await;
    assert_eq!(old_password.code(), "UNAUTHENTICATED");

    // Log out everywhere, and a link made by an API token dies when the token is revoked.
    let token = app
        .gql(
            Some(&fresh),
            "mutation { createApiToken(input: { name: \"ci\", scopes: [READ, WRITE] }) { token apiToken { id } } }",
            json!({}),
        )
        .await;
    let secret = token.data()["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_id = token.data()["createApiToken"]["apiToken"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_link = app.download_url(Some(&secret), &version_id).await;
    assert_eq!(status(token_link.clone()).await, 200);
    let out = app
        .gql(
            Some(&fresh),
            "mutation { revokeSessions { token } }",
            json!({}),
        )
        .await;
    let newest = out.data()["revokeSessions"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.gql(Some(&fresh), ME, json!({})).await.code(),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        status(token_link.clone()).await,
        200,
        "API tokens are not sessions"
    );
    app.gql(
        Some(&newest),
        "mutation($id: ID!) { revokeApiToken(id: $id) }",
        json!({ "id": token_id }),
    )
    .await
    .data();
    assert_eq!(status(token_link).await, 404);
    let audit = app
        .count_rows("audit_log WHERE action IN ('password_changed', 'sessions_revoked')")
        .await;
    assert_eq!(audit, 2);
}
