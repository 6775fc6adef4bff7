//! The caller of a request, resolved once from its bearer token, and the capabilities it
//! grants. Admin-only services take an [`Admin`], which only an administrator's viewer yields.

use async_graphql::Enum;
use uuid::Uuid;

use crate::{
    entities::{enums::Role, user},
    error::{AppError, AppResult, AuthFailure},
};

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
#[graphql(name = "TokenScope")]
pub enum Scope {
    /// Read models and download files the user can see.
    Read,
    /// Also create, change and delete the user's models.
    Write,
    /// Also act as an administrator (only effective for admin accounts).
    Admin,
    /// Also move the protected aliases (`MODELHUB_PROTECTED_ALIASES`) of models the caller
    /// may change: for a deployment pipeline's token. Only API tokens carry it.
    Promote,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
            Self::Promote => "promote",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
            Self::Admin => 4,
            Self::Promote => 8,
        }
    }
}

/// A set of scopes, stored as a comma-separated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// What a password login grants: every scope but PROMOTE, which only a token carries
    /// (so that moving a protected alias is a deliberate act of a credential made for it).
    pub const ALL: Self = Self(7);

    /// The set of the given scopes.
    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The scopes, in order.
    pub fn to_vec(self) -> Vec<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin, Scope::Promote]
            .into_iter()
            .filter(|s| self.contains(*s))
            .collect()
    }

    /// The stored form, e.g. `read,write`.
    pub fn to_db(self) -> String {
        self.to_vec()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the stored form; unknown names are ignored.
    pub fn from_db(raw: &str) -> Self {
        let scopes: Vec<Scope> = raw
            .split(',')
            .filter_map(|name| match name.trim() {
                "read" => Some(Scope::Read),
                "write" => Some(Scope::Write),
                "admin" => Some(Scope::Admin),
                "promote" => Some(Scope::Promote),
                _ => None,
            })
            .collect();
        Self::of(&scopes)
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A login's access token (JWT), issued under this session epoch.
    Session(i32),
    /// An API token, by id.
    ApiToken(Uuid),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The account, as read from the database for this request.
    pub user: user::Model,
    /// What the credential allows.
    pub scopes: ScopeSet,
    /// Which credential was used.
    pub credential: Credential,
}

impl Authenticated {
    /// Whether the caller acts as an administrator now (admin role and admin scope).
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin && self.scopes.contains(Scope::Admin)
    }
}

/// Whoever made the request.
#[derive(Debug, Clone, Default)]
pub enum Viewer {
    /// No credentials.
    #[default]
    Anonymous,
    /// A known, enabled user.
    User(Box<Authenticated>),
}

/// Proof that the caller is an administrator; only [`Viewer::require_admin`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a>(&'a Authenticated);

impl Admin<'_> {
    /// The administrator's user id.
    pub fn id(&self) -> Uuid {
        self.0.user.id
    }
}

impl Viewer {
    /// The authenticated caller, if any.
    pub fn authenticated(&self) -> Option<&Authenticated> {
        match self {
            Self::Anonymous => None,
            Self::User(auth) => Some(auth),
        }
    }

    /// The caller's user id, if any.
    pub fn user_id(&self) -> Option<Uuid> {
        self.authenticated().map(|a| a.user.id)
    }

    /// Whether the caller acts as an administrator.
    pub fn is_admin(&self) -> bool {
        self.authenticated().is_some_and(Authenticated::is_admin)
    }

    /// The caller, who must be authenticated and hold `scope`.
    pub fn require(&self, scope: Scope) -> AppResult<&Authenticated> {
        let auth = self
            .authenticated()
            .ok_or(AppError::Unauthenticated(AuthFailure::Missing))?;
        if !auth.scopes.contains(scope) {
            return Err(AppError::Forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str().to_uppercase()
            )));
        }
        Ok(auth)
    }

    /// The caller as an administrator, or `FORBIDDEN`.
    pub fn require_admin(&self) -> AppResult<Admin<'_>> {
        let auth = self.require(Scope::Read)?;
        if auth.user.role != Role::Admin {
            return Err(AppError::Forbidden("administrators only".into()));
        }
        if !auth.scopes.contains(Scope::Admin) {
            return Err(AppError::Forbidden(
                "this token lacks the ADMIN scope".into(),
            ));
        }
        Ok(Admin(auth))
    }
}
