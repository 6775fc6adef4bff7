//! API tokens for scripts: created with scopes and an expiry, shown once, listed, revoked.

use chrono::Duration;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    auth::{self, Authenticated, Credential, Scope, ScopeSet},
    entities::api_token,
    error::{AppError, AppResult, AuthFailure},
    services::{
        audit::{self, Subject},
        rate_limit::Action,
    },
    state::AppState,
};

/// Default lifetime of a new API token.
pub const DEFAULT_EXPIRY_DAYS: i64 = 90;
/// The longest lifetime a token may ask for.
pub const MAX_EXPIRY_DAYS: i64 = 3650;
/// How stale `last_used_at` may get before a use writes it again.
const LAST_USED_RESOLUTION: Duration = Duration::minutes(1);

/// A new token: its secret (shown once) and its stored record.
pub struct CreatedToken {
    pub secret: String,
    pub token: api_token::Model,
}

/// Creates an API token for the caller. Only a password session may mint tokens, and a token
/// never gets more than its creator can do: ADMIN needs an administrator.
pub async fn create(
    state: &AppState,
    caller: &Authenticated,
    name: &str,
    scopes: &[Scope],
    expires_in_days: Option<i32>,
) -> AppResult<CreatedToken> {
    state
        .limiter
        .check(Action::CreateToken, &caller.user.id.to_string())
        .await?;
    if !matches!(caller.credential, Credential::Session(_)) {
        return Err(AppError::Forbidden(
            "API tokens can only be created from a login session".into(),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input(
            "name",
            "must be 1 to 100 characters long",
        ));
    }
    if scopes.is_empty() {
        return Err(AppError::bad_input("scopes", "name at least one scope"));
    }
    if scopes.contains(&Scope::Admin) && !caller.is_admin() {
        return Err(AppError::Forbidden(
            "only administrators can create ADMIN tokens".into(),
        ));
    }
    let days = i64::from(expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS as i32));
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(AppError::bad_input(
            "expiresInDays",
            format!("must be between 1 and {MAX_EXPIRY_DAYS}"),
        ));
    }
    let minted = auth::api_token::generate();
    let now = super::now();
    let txn = state.db.begin().await?;
    let token = api_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(caller.user.id),
        name: Set(name.to_owned()),
        token_hash: Set(minted.hash),
        prefix: Set(minted.display_prefix),
        scopes: Set(ScopeSet::of(scopes).to_db()),
        created_at: Set(now),
        expires_at: Set(Some(now + Duration::days(days))),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(caller.user.id),
        "api_token_created",
        Subject::ApiToken(token.id),
        None,
        Some(serde_json::json!({ "name": token.name, "scopes": token.scopes })),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user_id = %caller.user.id, token_id = %token.id, "API token created");
    Ok(CreatedToken {
        secret: minted.secret,
        token,
    })
}

/// The caller's tokens, newest first (revoked ones included, marked by `revoked_at`).
pub async fn list_for_user(state: &AppState, user_id: Uuid) -> AppResult<Vec<api_token::Model>> {
    Ok(api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .order_by_desc(api_token::Column::Id)
        .all(&state.db)
        .await?)
}

/// Revokes one of the caller's tokens (an administrator may revoke anyone's). Revoking needs
/// WRITE, and a token cannot revoke one that holds a scope it lacks (a WRITE token cannot
/// revoke its owner's ADMIN token). Audited.
pub async fn revoke(state: &AppState, caller: &Authenticated, id: Uuid) -> AppResult<bool> {
    if !caller.scopes.contains(Scope::Write) {
        return Err(AppError::Forbidden(
            "revoking a token needs the WRITE scope".into(),
        ));
    }
    let token = api_token::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|t| t.user_id == caller.user.id || caller.is_admin())
        .ok_or(AppError::NotFound("API token"))?;
    let held = ScopeSet::from_db(&token.scopes);
    if held.to_vec().iter().any(|s| !caller.scopes.contains(*s)) {
        return Err(AppError::Forbidden(
            "this credential cannot revoke a token with scopes it does not have".into(),
        ));
    }
    if token.revoked_at.is_some() {
        return Ok(true);
    }
    let txn = state.db.begin().await?;
    let owner = token.user_id;
    let mut active: api_token::ActiveModel = token.into();
    active.revoked_at = Set(Some(super::now()));
    active.update(&txn).await?;
    audit::record(
        &txn,
        Some(caller.user.id),
        "api_token_revoked",
        Subject::ApiToken(id),
        None,
        Some(serde_json::json!({ "owner_id": owner })),
    )
    .await?;
    super::commit_account_change(state, txn).await?;
    tracing::info!(user_id = %caller.user.id, token_id = %id, "API token revoked");
    Ok(true)
}

/// Finds the live token with this secret and notes its use.
pub async fn verify_secret(state: &AppState, secret: &str) -> AppResult<api_token::Model> {
    let token = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(auth::api_token::hash(secret)))
        .one(&state.db)
        .await?
        .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
    if token.revoked_at.is_some() {
        return Err(AppError::Unauthenticated(AuthFailure::RevokedToken));
    }
    let now = super::now();
    if token.expires_at.is_some_and(|at| at <= now) {
        return Err(AppError::Unauthenticated(AuthFailure::ExpiredToken));
    }
    if token
        .last_used_at
        .is_none_or(|at| now - at > LAST_USED_RESOLUTION)
    {
        api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, Expr::value(now))
            .filter(api_token::Column::Id.eq(token.id))
            .exec(&state.db)
            .await?;
    }
    Ok(token)
}
