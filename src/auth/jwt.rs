//! HS256 JSON Web Tokens: access tokens for sessions, short-lived signed download tokens, and
//! the upload links of the Hugging Face protocol's LFS transfer.
//! Validation is pinned to HS256, the issuer, and an audience per token kind.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::Credential,
    entities::enums::Role,
    error::{AppError, AppResult, AuthFailure},
};

const ISSUER: &str = "modelhub";
const ACCESS_AUDIENCE: &str = "modelhub:api";
const DOWNLOAD_AUDIENCE: &str = "modelhub:download";
const LFS_AUDIENCE: &str = "modelhub:lfs-upload";

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    /// The role when the token was issued (the database's current role is what counts).
    pub role: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The account's session epoch when the token was issued.
    #[serde(default)]
    pub sep: i32,
}

/// The claims of a signed download link.
#[derive(Debug, Serialize, Deserialize)]
pub struct DownloadClaims {
    /// The version id.
    pub sub: Uuid,
    /// The user the link was made for, if any.
    pub uid: Option<Uuid>,
    /// The credential that made it: an API token's id, or a session's epoch.
    #[serde(default)]
    pub tid: Option<Uuid>,
    #[serde(default)]
    pub sep: Option<i32>,
    /// The one file of the version the link is for; none: the whole version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
}

/// What an LFS upload link may do: send the whole object, one part of it, or complete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LfsStep {
    Whole,
    Part(u32),
    Complete,
}

/// The claims of an LFS upload link: who may send which object to which model.
#[derive(Debug, Serialize, Deserialize)]
pub struct LfsClaims {
    /// The model id.
    pub sub: Uuid,
    /// The user the link was made for.
    pub uid: Uuid,
    /// The credential that made it: an API token's id, or a session's epoch.
    #[serde(default)]
    pub tid: Option<Uuid>,
    #[serde(default)]
    pub sep: Option<i32>,
    /// The object's SHA-256 and size.
    pub oid: String,
    pub size: u64,
    pub step: LfsStep,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
}

/// Signing and verification keys, built once from the configured secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    /// Builds keys from the HS256 secret.
    pub fn new(secret: &SecretString) -> Result<Self, jsonwebtoken::errors::Error> {
        let bytes = secret.expose_secret().as_bytes();
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes)?,
            decoding: DecodingKey::from_secret(bytes)?,
        })
    }

    fn validation(audience: &str) -> Validation {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        validation
    }

    fn sign<T: Serialize>(&self, claims: &T) -> AppResult<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(AppError::internal)
    }

    /// Issues an access token for a user, valid until `expires_at`.
    pub fn issue_access(
        &self,
        user_id: Uuid,
        role: Role,
        session_epoch: i32,
        expires_at: DateTime<Utc>,
    ) -> AppResult<String> {
        self.sign(&AccessClaims {
            sub: user_id,
            role: match role {
                Role::User => "user".into(),
                Role::Admin => "admin".into(),
            },
            iss: ISSUER.into(),
            aud: ACCESS_AUDIENCE.into(),
            iat: Utc::now().timestamp(),
            exp: expires_at.timestamp(),
            sep: session_epoch,
        })
    }

    /// Verifies an access token and returns its claims.
    pub fn verify_access(&self, token: &str) -> AppResult<AccessClaims> {
        jsonwebtoken::decode::<AccessClaims>(
            token,
            &self.decoding,
            &Self::validation(ACCESS_AUDIENCE),
        )
        .map(|data| data.claims)
        .map_err(token_error)
    }

    /// Signs a download link for one version.
    pub fn issue_download(
        &self,
        version_id: Uuid,
        path: Option<&str>,
        holder: Option<(Uuid, &Credential)>,
        expires_at: DateTime<Utc>,
    ) -> AppResult<String> {
        let (tid, sep) = match holder.map(|(_, c)| c) {
            Some(Credential::ApiToken(id)) => (Some(*id), None),
            Some(Credential::Session(epoch)) => (None, Some(*epoch)),
            None => (None, None),
        };
        self.sign(&DownloadClaims {
            sub: version_id,
            uid: holder.map(|(id, _)| id),
            tid,
            sep,
            path: path.map(str::to_owned),
            iss: ISSUER.into(),
            aud: DOWNLOAD_AUDIENCE.into(),
            exp: expires_at.timestamp(),
        })
    }

    /// Verifies a download token and returns its claims.
    pub fn verify_download(&self, token: &str) -> AppResult<DownloadClaims> {
        jsonwebtoken::decode::<DownloadClaims>(
            token,
            &self.decoding,
            &Self::validation(DOWNLOAD_AUDIENCE),
        )
        .map(|data| data.claims)
        .map_err(token_error)
    }
}

impl JwtKeys {
    /// Signs an LFS upload link for `claims`' object (its issuer and audience are set here).
    pub fn issue_lfs(&self, mut claims: LfsClaims) -> AppResult<String> {
        claims.iss = ISSUER.into();
        claims.aud = LFS_AUDIENCE.into();
        self.sign(&claims)
    }

    /// Verifies an LFS upload link and returns its claims.
    pub fn verify_lfs(&self, token: &str) -> AppResult<LfsClaims> {
        jsonwebtoken::decode::<LfsClaims>(token, &self.decoding, &Self::validation(LFS_AUDIENCE))
            .map(|data| data.claims)
            .map_err(token_error)
    }
}

fn token_error(err: jsonwebtoken::errors::Error) -> AppError {
    match err.kind() {
        ErrorKind::ExpiredSignature => AppError::Unauthenticated(AuthFailure::ExpiredToken),
        _ => AppError::Unauthenticated(AuthFailure::InvalidToken),
    }
}
