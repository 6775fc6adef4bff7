//! Accounts: registration, login, administrators, and turning a bearer token into a `Viewer`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, Set, TransactionTrait,
    sea_query::ExprTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::{self, Authenticated, Credential, ScopeSet, Viewer},
    domain::account::{Email, Password, Username},
    entities::{enums::Role, user},
    error::{AppError, AppResult, AuthFailure},
    services::{
        audit::{self, Subject},
        rate_limit::{Action, address_key},
    },
    state::AppState,
};

/// A new session: an access token and the account it belongs to.
pub struct Session {
    /// The signed access token.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The account.
    pub user: user::Model,
}

/// What `register` needs.
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
}

fn new_session(state: &AppState, user: user::Model) -> AppResult<Session> {
    let ttl =
        chrono::Duration::from_std(state.config.access_token_ttl).map_err(AppError::internal)?;
    let expires_at = Utc::now() + ttl;
    let token = state
        .jwt
        .issue_access(user.id, user.role, user.session_epoch, expires_at)?;
    Ok(Session {
        token,
        expires_at,
        user,
    })
}

/// Fails with `CONFLICT` naming the field when the username or email is taken.
async fn ensure_available(state: &AppState, username: &Username, email: &Email) -> AppResult<()> {
    let taken = user::Entity::find()
        .filter(
            Condition::any()
                .add(user::Column::Username.eq(username.as_str()))
                .add(user::Column::Email.eq(email.as_str())),
        )
        .all(&state.db)
        .await?;
    if taken.iter().any(|u| u.username == username.as_str()) {
        return Err(AppError::Conflict(
            "username: this username is taken".into(),
        ));
    }
    if !taken.is_empty() {
        return Err(AppError::Conflict(
            "email: an account with this email exists".into(),
        ));
    }
    Ok(())
}

async fn insert_user(state: &AppState, input: Registration, role: Role) -> AppResult<user::Model> {
    let username = Username::parse_new("username", &input.username)?;
    let email = Email::parse("email", &input.email)?;
    let password = Password::parse("password", input.password, &username)?;
    ensure_available(state, &username, &email).await?;
    let password_hash = auth::password::hash(password.into_inner()).await?;
    let now = super::now();
    let user = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(username.as_str().to_owned()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(password_hash),
        role: Set(role),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        session_epoch: Set(0),
    }
    .insert(&state.db)
    .await?;
    tracing::info!(user_id = %user.id, username = %user.username, "user registered");
    Ok(user)
}

/// Creates an ordinary account and logs it in.
pub async fn register(
    state: &AppState,
    input: Registration,
    ip: Option<IpAddr>,
) -> AppResult<Session> {
    if let Some(ip) = ip {
        state
            .limiter
            .check(Action::Register, &address_key(ip))
            .await?;
    }
    let user = insert_user(state, input, Role::User).await?;
    new_session(state, user)
}

/// Logs in by username or email. A wrong password and an unknown user get the same answer
/// after the same amount of work; a disabled account is refused only after its password checks.
pub async fn login(
    state: &AppState,
    login: &str,
    password: String,
    ip: Option<IpAddr>,
) -> AppResult<Session> {
    let key = login.trim().to_lowercase();
    // Per address; per account and address, so that failing logins under someone's name from
    // elsewhere does not lock them out; and per account across all addresses at ten times the
    // rate, so that guessing from many addresses stays slow.
    let address = ip.map_or_else(|| "unknown".to_owned(), address_key);
    if ip.is_some() {
        state.limiter.check(Action::LoginByIp, &address).await?;
    }
    state
        .limiter
        .check(Action::LoginByAccount, &format!("{key}@{address}"))
        .await?;
    state
        .limiter
        .check(Action::LoginByAccountAnywhere, &key)
        .await?;
    let column = if key.contains('@') {
        user::Column::Email
    } else {
        user::Column::Username
    };
    let found = user::Entity::find()
        .filter(column.eq(key))
        .one(&state.db)
        .await?;
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    if !auth::password::verify(stored, password).await? {
        return Err(AppError::Unauthenticated(AuthFailure::InvalidCredentials));
    }
    let user = found.ok_or(AppError::Unauthenticated(AuthFailure::InvalidCredentials))?;
    if user.disabled {
        return Err(AppError::Unauthenticated(AuthFailure::AccountDisabled));
    }
    tracing::info!(user_id = %user.id, "user logged in");
    new_session(state, user)
}

/// Changes the caller's password (the current one must be given) and ends every session
/// issued before: returns a new one. Audited.
pub async fn change_password(
    state: &AppState,
    caller: &Authenticated,
    current: String,
    new: String,
) -> AppResult<Session> {
    let stored = Some(caller.user.password_hash.clone());
    if !auth::password::verify(stored, current).await? {
        return Err(AppError::bad_input(
            "currentPassword",
            "is not the account's password",
        ));
    }
    let username = Username::parse("username", &caller.user.username)?;
    let password = Password::parse("newPassword", new, &username)?;
    let hash = auth::password::hash(password.into_inner()).await?;
    let user = end_sessions(state, caller, Some(hash), "password_changed").await?;
    new_session(state, user)
}

/// Ends every session of the caller's account issued before now ("log out everywhere"): their
/// access tokens and the signed links they made are refused from now on. Audited.
pub async fn revoke_sessions(state: &AppState, caller: &Authenticated) -> AppResult<Session> {
    let user = end_sessions(state, caller, None, "sessions_revoked").await?;
    new_session(state, user)
}

async fn end_sessions(
    state: &AppState,
    caller: &Authenticated,
    password_hash: Option<String>,
    action: &str,
) -> AppResult<user::Model> {
    let txn = state.db.begin().await?;
    let mut update = user::Entity::update_many()
        .col_expr(
            user::Column::SessionEpoch,
            sea_orm::sea_query::Expr::col(user::Column::SessionEpoch).add(1),
        )
        .col_expr(
            user::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(super::now()),
        );
    if let Some(hash) = password_hash {
        update = update.col_expr(
            user::Column::PasswordHash,
            sea_orm::sea_query::Expr::value(hash),
        );
    }
    update
        .filter(user::Column::Id.eq(caller.user.id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        Some(caller.user.id),
        action,
        Subject::User(caller.user.id),
        None,
        None,
    )
    .await?;
    let user = user::Entity::find_by_id(caller.user.id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    super::commit_account_change(state, txn).await?;
    tracing::info!(user_id = %user.id, action, "sessions ended");
    Ok(user)
}

/// Creates an administrator, or promotes the existing account with that username (whose
/// password is then left unchanged). Returns the account and whether it was created.
pub async fn create_admin(state: &AppState, input: Registration) -> AppResult<(user::Model, bool)> {
    let username = Username::parse("username", &input.username)?;
    if let Some(existing) = user::Entity::find()
        .filter(user::Column::Username.eq(username.as_str()))
        .one(&state.db)
        .await?
    {
        let mut active: user::ActiveModel = existing.into();
        active.role = Set(Role::Admin);
        active.disabled = Set(false);
        active.updated_at = Set(super::now());
        let txn = state.db.begin().await?;
        let user = active.update(&txn).await?;
        audit::record(
            &txn,
            None,
            "admin_promoted",
            Subject::User(user.id),
            Some("modelhub create-admin"),
            None,
        )
        .await?;
        super::commit_account_change(state, txn).await?;
        tracing::info!(user_id = %user.id, "user promoted to administrator");
        return Ok((user, false));
    }
    let user = insert_user(state, input, Role::Admin).await?;
    audit::record(
        &state.db,
        None,
        "admin_created",
        Subject::User(user.id),
        Some("modelhub create-admin"),
        None,
    )
    .await?;
    Ok((user, true))
}

/// Resolves the `Authorization` header's bearer token (a JWT or an API token) to a `Viewer`.
/// No header means anonymous; a bad, expired or revoked token, or a disabled account, fails.
pub async fn authenticate(state: &AppState, bearer: Option<&str>) -> AppResult<Viewer> {
    let Some(token) = bearer else {
        return Ok(Viewer::Anonymous);
    };
    let Some(cache) = &state.credentials else {
        return Ok(resolve(state, token).await?.0);
    };
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let generation = state.changes.accounts_current();
    if let Some(viewer) = cache.get(&key, generation) {
        return Ok(viewer);
    }
    let (viewer, expires_at) = resolve(state, token).await?;
    cache.put_until(key, generation, expires_at, viewer.clone());
    Ok(viewer)
}

/// The caller a signed upload link acts for, read again now: its account enabled, and the
/// credential that made the link still good (its API token not revoked or expired, with the
/// scopes it has now; or its session not ended).
pub async fn link_holder(
    state: &AppState,
    user_id: Uuid,
    token_id: Option<Uuid>,
    session_epoch: Option<i32>,
) -> AppResult<Viewer> {
    let invalid = || AppError::Unauthenticated(AuthFailure::InvalidToken);
    let user = user::Entity::find_by_id(user_id)
        .one(&state.db)
        .await?
        .ok_or_else(invalid)?;
    let (scopes, credential) = match (token_id, session_epoch) {
        (Some(id), _) => {
            let token = crate::entities::api_token::Entity::find_by_id(id)
                .one(&state.db)
                .await?
                .filter(|t| {
                    t.user_id == user.id
                        && t.revoked_at.is_none()
                        && t.expires_at.is_none_or(|at| Utc::now() < at)
                })
                .ok_or_else(invalid)?;
            (ScopeSet::from_db(&token.scopes), Credential::ApiToken(id))
        }
        (None, Some(epoch)) if epoch >= user.session_epoch => {
            (ScopeSet::ALL, Credential::Session(epoch))
        }
        _ => return Err(AppError::Unauthenticated(AuthFailure::SessionEnded)),
    };
    if user.disabled {
        return Err(AppError::Unauthenticated(AuthFailure::AccountDisabled));
    }
    Ok(Viewer::User(Box::new(Authenticated {
        user,
        scopes,
        credential,
    })))
}

/// Reads the account behind a bearer token; also returns when the token expires.
async fn resolve(state: &AppState, token: &str) -> AppResult<(Viewer, Option<DateTime<Utc>>)> {
    let (user_id, scopes, credential, expires_at) = if token.starts_with(auth::api_token::PREFIX) {
        let api_token = super::api_tokens::verify_secret(state, token).await?;
        (
            api_token.user_id,
            ScopeSet::from_db(&api_token.scopes),
            Credential::ApiToken(api_token.id),
            api_token.expires_at,
        )
    } else {
        let claims = state.jwt.verify_access(token)?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0);
        (
            claims.sub,
            ScopeSet::ALL,
            Credential::Session(claims.sep),
            expires_at,
        )
    };
    let user = user::Entity::find_by_id(user_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
    if let Credential::Session(epoch) = credential
        && epoch < user.session_epoch
    {
        return Err(AppError::Unauthenticated(AuthFailure::SessionEnded));
    }
    if user.disabled {
        return Err(AppError::Unauthenticated(AuthFailure::AccountDisabled));
    }
    let viewer = Viewer::User(Box::new(Authenticated {
        user,
        scopes,
        credential,
    }));
    Ok((viewer, expires_at))
}
