//! The one error type of the request path, and its stable codes.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any `Display`
//! error into a message with no code, so only the explicit conversion below reaches clients —
//! with `extensions.code`, and without internals for `INTERNAL`.

use async_graphql::ErrorExtensions;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sea_orm::{DbErr, SqlErr};

/// A stable, machine-readable error code (`extensions.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    PersistedQueryNotFound,
    Timeout,
    Internal,
}

impl ErrorCode {
    const ALL: [Self; 10] = [
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::BadUserInput,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::PersistedQueryNotFound,
        Self::Timeout,
        Self::Internal,
    ];

    /// The code with this name, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
    }

    /// The code as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::Timeout => "TIMEOUT",
            Self::Internal => "INTERNAL",
        }
    }

    /// The HTTP status for plain (non-GraphQL) routes.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadUserInput => StatusCode::BAD_REQUEST,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            // Apollo's persisted-queries link reads this answer only with status 200.
            Self::PersistedQueryNotFound => StatusCode::OK,
            Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Why a caller is not authenticated (`extensions.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials where some are needed.
    Missing,
    /// Wrong username or password (the same for an unknown user).
    InvalidCredentials,
    /// A token that is not well formed or whose signature does not verify.
    InvalidToken,
    /// A token past its expiry.
    ExpiredToken,
    /// An API token that was revoked.
    RevokedToken,
    /// A session ended by a password change or "log out everywhere".
    SessionEnded,
    /// The account is disabled.
    AccountDisabled,
}

impl AuthFailure {
    fn reason(self) -> &'static str {
        match self {
            Self::Missing => "MISSING_CREDENTIALS",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::ExpiredToken => "EXPIRED_TOKEN",
            Self::RevokedToken => "REVOKED_TOKEN",
            Self::SessionEnded => "SESSION_ENDED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Missing => "authentication required",
            Self::InvalidCredentials => "invalid username or password",
            Self::InvalidToken => "invalid access token",
            Self::ExpiredToken => "the access token has expired",
            Self::RevokedToken => "the API token has been revoked",
            Self::SessionEnded => "this session was ended; log in again",
            Self::AccountDisabled => "this account is disabled",
        }
    }
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `future` as request `id`: an internal error it raises is logged with the id, and the
/// client is given the same id to quote.
pub async fn with_request_id<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// The id of the request being served, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Every failure a request can end with.
#[derive(Debug)]
pub enum AppError {
    /// The caller is not (validly) authenticated.
    Unauthenticated(AuthFailure),
    /// The caller is known but may not do this.
    Forbidden(String),
    /// The thing does not exist, or the caller may not know it does.
    NotFound(&'static str),
    /// An input value is wrong; `field` names it.
    BadInput { field: String, message: String },
    /// The request clashes with the current state (duplicate, wrong workflow state).
    Conflict(String),
    /// An upload or body is over its limit.
    PayloadTooLarge { limit: u64 },
    /// Too many requests; retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// A persisted query's hash this replica does not know: the client sends the query.
    PersistedQueryNotFound,
    /// The work did not finish within its time limit (a model run).
    TimedOut(String),
    /// Anything unexpected. The cause is logged, never sent.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// A `BAD_USER_INPUT` error about one field.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An unexpected failure with its cause.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(cause.into())
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadInput { .. } => ErrorCode::BadUserInput,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::PersistedQueryNotFound => ErrorCode::PersistedQueryNotFound,
            Self::TimedOut(_) => ErrorCode::Timeout,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message clients see. `INTERNAL` says nothing about its cause.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(failure) => failure.message().to_owned(),
            Self::Forbidden(message) | Self::Conflict(message) | Self::TimedOut(message) => {
                message.clone()
            }
            Self::NotFound(what) => format!("{what} not found"),
            Self::BadInput { field, message } => format!("{field}: {message}"),
            Self::PayloadTooLarge { limit } => {
                format!("the upload exceeds the limit of {limit} bytes")
            }
            Self::RateLimited { retry_after_secs } => {
                format!("too many requests; retry in {retry_after_secs} s")
            }
            // The exact text Apollo Client looks for.
            Self::PersistedQueryNotFound => "PersistedQueryNotFound".to_owned(),
            Self::Internal(_) => "internal server error".to_owned(),
        }
    }

    /// The whole cause of an unexpected error, outermost first (for logs and the command
    /// line, never for clients).
    pub fn cause(&self) -> Option<String> {
        let Self::Internal(cause) = self else {
            return None;
        };
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(inner) = source {
            chain.push_str(": ");
            chain.push_str(&inner.to_string());
            source = inner.source();
        }
        Some(chain)
    }

    /// Logs unexpected errors with their cause chain and the request's id, which it returns
    /// for the answer; the other errors are the caller's business.
    pub fn log(&self) -> Option<String> {
        let chain = self.cause()?;
        let id = request_id().unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
        tracing::error!(request_id = %id, error = %chain, "internal error");
        Some(id)
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if matches!(err, DbErr::RecordNotFound(_)) {
            return Self::NotFound("record");
        }
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::Conflict("an item with the same unique value already exists".into())
            }
            // PostgreSQL refuses NUL in text and JSON; the inputs are checked for it, and this
            // keeps anything that slips through a client error rather than an internal one.
            _ if err.to_string().contains("invalid byte sequence")
                || err
                    .to_string()
                    .contains("unsupported Unicode escape sequence") =>
            {
                Self::bad_input("input", "text must not contain NUL characters")
            }
            _ => Self::internal(err),
        }
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let logged = err.log();
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", err.code().as_str());
            if let Some(id) = &logged {
                ext.set("requestId", id.as_str());
            }
            match &err {
                AppError::Unauthenticated(failure) => ext.set("reason", failure.reason()),
                AppError::BadInput { field, .. } => ext.set("field", field.as_str()),
                AppError::PayloadTooLarge { limit } => ext.set("limit", *limit),
                AppError::RateLimited { retry_after_secs } => {
                    ext.set("retryAfter", *retry_after_secs)
                }
                _ => {}
            }
        })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let logged = self.log();
        let mut body = serde_json::json!({
            "error": { "code": self.code().as_str(), "message": self.message() }
        });
        if let Some(id) = logged {
            body["error"]["requestId"] = id.into();
        }
        let mut response = (self.code().status(), axum::Json(body)).into_response();
        if let Self::RateLimited { retry_after_secs } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if matches!(self, Self::Unauthenticated(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The result of a service call.
pub type AppResult<T> = Result<T, AppError>;
