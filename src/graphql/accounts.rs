//! Accounts in GraphQL: `me`, `register`, `login`, and API tokens.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    RequestContext,
    context::loaders,
    models::{ConnectionOf, Model, connection, newest_page},
    scalars::{BigInt, parse_id},
};
use crate::{
    auth::Scope,
    entities::{api_token, enums::Role, model, user},
    error::{AppError, AuthFailure},
    services::{
        access,
        accounts::{self, Registration, Session},
        api_tokens,
    },
};

/// A Model Hub account.
pub struct User {
    model: user::Model,
    /// The account is the one that just logged in or registered.
    is_session: bool,
}

impl User {
    /// An account as seen by the request's viewer.
    pub fn new(model: user::Model) -> Self {
        Self {
            model,
            is_session: false,
        }
    }

    /// The account a `register` or `login` answer is about: its own private fields show.
    fn of_session(model: user::Model) -> Self {
        Self {
            model,
            is_session: true,
        }
    }

    /// Whether the viewer may see the account's private fields (itself, or an administrator).
    fn reveals_private(&self, ctx: &Context<'_>) -> bool {
        self.is_session || access::may_read_account(ctx.viewer(), self.model.id)
    }
}

#[Object]
impl User {
    /// The account's id.
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    /// The unique, lower-case username.
    async fn username(&self) -> &str {
        &self.model.username
    }

    /// The email address: shown to the account itself and to administrators only.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        self.reveals_private(ctx)
            .then_some(self.model.email.as_str())
    }

    /// USER or ADMIN.
    async fn role(&self) -> Role {
        self.model.role
    }

    /// Whether the account is disabled (it can neither log in nor use its tokens).
    async fn disabled(&self) -> bool {
        self.model.disabled
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    /// What the account stores (the account itself or an administrator).
    async fn usage(&self, ctx: &Context<'_>) -> Result<UserUsage> {
        if !self.reveals_private(ctx) {
            return Err(
                AppError::Forbidden("only the account itself can see its usage".into()).into(),
            );
        }
        let usage = loaders(ctx)?
            .usage
            .load_one(self.model.id)
            .await
            .map_err(|e| AppError::internal(e.to_string()))?
            .unwrap_or_default();
        Ok(UserUsage {
            models: BigInt(usage.models),
            versions: BigInt(usage.versions),
            bytes: BigInt(usage.bytes),
        })
    }

    /// The account's models that the caller may see.
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn models(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<Model>> {
        let loaders = loaders(ctx)?;
        let page = newest_page(
            ctx,
            &loaders.models_of_owner,
            &loaders.model_counts,
            self.model.id,
            (first, after),
            |m: &model::Model| m.id,
        )
        .await?;
        // The rows' own relations batch across every owner of this level through the loaders.
        Ok(connection(page, Model))
    }

    /// The account's API tokens, newest first (the account itself or an administrator only).
    async fn api_tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiToken>> {
        if !self.reveals_private(ctx) {
            return Err(
                AppError::Forbidden("only the account itself can list its tokens".into()).into(),
            );
        }
        let tokens = api_tokens::list_for_user(ctx.state(), self.model.id).await?;
        Ok(tokens.into_iter().map(ApiToken).collect())
    }
}

/// What an account stores.
#[derive(SimpleObject)]
pub struct UserUsage {
    models: BigInt,
    versions: BigInt,
    /// Bytes referenced by the account's versions.
    bytes: BigInt,
}

/// A long-lived token for scripts. Its secret is shown once, when it is created.
pub struct ApiToken(api_token::Model);

#[Object]
impl ApiToken {
    /// The token's id (for `revokeApiToken`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// What the owner called it.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The first characters of the secret, to recognise it.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// What it may do.
    async fn scopes(&self) -> Vec<Scope> {
        crate::auth::ScopeSet::from_db(&self.0.scopes).to_vec()
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it stops working.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// When it was last used (to the minute).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }

    /// When it was revoked, if it was.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// A login: the access token to send as `Authorization: Bearer …`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// The access token (a JWT).
    token: String,
    /// When it expires.
    expires_at: DateTime<Utc>,
    /// The account.
    user: User,
}

impl From<Session> for AuthPayload {
    fn from(session: Session) -> Self {
        Self {
            token: session.token,
            expires_at: session.expires_at,
            user: User::of_session(session.user),
        }
    }
}

/// A new API token and its secret, which is never shown again.
#[derive(SimpleObject)]
pub struct CreatedApiToken {
    /// The secret to send as `Authorization: Bearer …`.
    token: String,
    /// The token's record.
    api_token: ApiToken,
}

/// A new account.
#[derive(InputObject)]
pub struct RegisterInput {
    /// 3–39 characters of letters, digits, '-', '_' and '.'; stored in lower case.
    username: String,
    /// The account's email address.
    email: String,
    /// At least 8 characters, not a well-known password, not containing the username.
    password: String,
}

/// Credentials.
#[derive(InputObject)]
pub struct LoginInput {
    /// The username or the email address.
    username: String,
    /// The password.
    password: String,
}

/// A new API token.
#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// A name to recognise it by.
    name: String,
    /// What it may do: READ, WRITE (uploads and changes), ADMIN (administrators only),
    /// PROMOTE (with WRITE, moving the protected aliases of models its holder may change:
    /// for a deployment pipeline; a login session never has it).
    scopes: Vec<Scope>,
    /// Lifetime in days (default 90, at most 3650).
    expires_in_days: Option<i32>,
}

/// Account queries.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The caller's account; null for anonymous callers.
    async fn me(&self, ctx: &Context<'_>) -> Option<User> {
        ctx.viewer()
            .authenticated()
            .map(|auth| User::new(auth.user.clone()))
    }
}

/// Account mutations.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an account and logs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let registration = Registration {
            username: input.username,
            email: input.email,
            password: input.password,
        };
        Ok(
            accounts::register(ctx.state(), registration, ctx.client_ip())
                .await?
                .into(),
        )
    }

    /// Logs in with a username (or email) and password.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        Ok(accounts::login(
            ctx.state(),
            &input.username,
            input.password,
            ctx.client_ip(),
        )
        .await?
        .into())
    }

    /// Creates an API token for the caller; the secret is in the answer and nowhere else.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        input: CreateApiTokenInput,
    ) -> Result<CreatedApiToken> {
        let caller = ctx.viewer().require(Scope::Write)?;
        let created = api_tokens::create(
            ctx.state(),
            caller,
            &input.name,
            &input.scopes,
            input.expires_in_days,
        )
        .await?;
        Ok(CreatedApiToken {
            token: created.secret,
            api_token: ApiToken(created.token),
        })
    }

    /// Revokes one of the caller's API tokens; it stops working at once.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = ctx
            .viewer()
            .authenticated()
            .ok_or(AppError::Unauthenticated(AuthFailure::Missing))?;
        let id = parse_id("id", &id)?;
        Ok(api_tokens::revoke(ctx.state(), caller, id).await?)
    }

    /// Changes the caller's password (the current one must be given). Every access token
    /// issued before, and every signed link they made, stops working; the answer holds a new
    /// login.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<AuthPayload> {
        let caller = ctx.viewer().require(Scope::Write)?;
        Ok(
            accounts::change_password(ctx.state(), caller, current_password, new_password)
                .await?
                .into(),
        )
    }

    /// Logs out everywhere: every access token of the caller's account issued before, and
    /// every signed link they made, stops working (API tokens are revoked one by one). The
    /// answer holds a new login.
    async fn revoke_sessions(&self, ctx: &Context<'_>) -> Result<AuthPayload> {
        let caller = ctx.viewer().require(Scope::Write)?;
        Ok(accounts::revoke_sessions(ctx.state(), caller).await?.into())
    }
}
