//! Who may see and change a model. To anyone who may not see it, a private model does not
//! exist: the same `NOT_FOUND` as an id that was never used.

use sea_orm::{
    ColumnTrait, Condition, DatabaseBackend,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    auth::{Authenticated, Scope, Viewer},
    entities::{
        enums::{ApprovalStatus, Visibility},
        model,
    },
    error::{AppError, AppResult},
};

/// What the caller's credential must allow for a mutation to run at all (the resolvers then
/// check ownership and state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone, signed in or not (registering, logging in).
    Anyone,
    /// A credential with this scope.
    Scope(Scope),
    /// An administrator acting with the ADMIN scope.
    Admin,
}

/// Every mutation's requirement, in one table (a test walks the schema so that none is
/// missing; a name not in it is no mutation of the schema, which the executor reports).
const MUTATIONS: &[(&str, Requirement)] = &[
    ("register", Requirement::Anyone),
    ("login", Requirement::Anyone),
    ("createApiToken", Requirement::Scope(Scope::Write)),
    ("revokeApiToken", Requirement::Scope(Scope::Write)),
    ("changePassword", Requirement::Scope(Scope::Write)),
    ("revokeSessions", Requirement::Scope(Scope::Write)),
    ("createModel", Requirement::Scope(Scope::Write)),
    ("createModelVersion", Requirement::Scope(Scope::Write)),
    ("updateModel", Requirement::Scope(Scope::Write)),
    ("deleteModel", Requirement::Scope(Scope::Write)),
    ("deleteModelVersion", Requirement::Scope(Scope::Write)),
    ("requestPublication", Requirement::Scope(Scope::Write)),
    ("unpublishModel", Requirement::Scope(Scope::Write)),
    ("approveModel", Requirement::Admin),
    ("rejectModel", Requirement::Admin),
    ("withdrawModelVersion", Requirement::Admin),
    ("releaseModelVersion", Requirement::Admin),
    ("restoreModelVersion", Requirement::Admin),
    ("setUserRole", Requirement::Admin),
    ("disableUser", Requirement::Admin),
    ("enableUser", Requirement::Admin),
    ("__typename", Requirement::Anyone),
];

/// The requirement of mutation `name`, if it has one.
pub fn mutation_requirement(name: &str) -> Option<Requirement> {
    MUTATIONS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// Refuses a mutation the viewer's credential does not allow (`UNAUTHENTICATED` without one,
/// `FORBIDDEN` without the scope), before it runs.
pub fn ensure_may_call(viewer: &Viewer, mutation: &str) -> AppResult<()> {
    match mutation_requirement(mutation) {
        Some(Requirement::Anyone) => Ok(()),
        Some(Requirement::Scope(scope)) => viewer.require(scope).map(|_| ()),
        Some(Requirement::Admin) => viewer.require_admin().map(|_| ()),
        // An unknown field is the executor's to report; only schema mutations have rules.
        None => Ok(()),
    }
}

/// Whether `viewer` may see `model`.
pub fn can_view(viewer: &Viewer, model: &model::Model) -> bool {
    is_public(model) || viewer.is_admin() || viewer.user_id() == Some(model.owner_id)
}

/// Whether the model is visible to everyone.
pub fn is_public(model: &model::Model) -> bool {
    model.visibility == Visibility::Public && model.approval_status == ApprovalStatus::Approved
}

/// The SQL condition selecting the models `viewer` may see.
///
/// On SQLite, "public or mine" is written with unary-plus column references: they keep the
/// planner from answering the OR with two index searches and a sort of every match, so it
/// walks the sort order's index instead and stops at the page's end.
pub fn visible_condition(viewer: &Viewer, backend: DatabaseBackend) -> Condition {
    let public = Condition::all()
        .add(model::Column::Visibility.eq(Visibility::Public))
        .add(model::Column::ApprovalStatus.eq(ApprovalStatus::Approved));
    match viewer.authenticated() {
        _ if viewer.is_admin() => Condition::all(),
        Some(auth) if backend == DatabaseBackend::Sqlite => Condition::any()
            .add(
                Condition::all()
                    .add(Expr::cust("+\"visibility\"").eq("public"))
                    .add(Expr::cust("+\"approval_status\"").eq("approved")),
            )
            .add(Expr::cust("+\"owner_id\"").eq(auth.user.id)),
        Some(auth) => Condition::any()
            .add(public)
            .add(model::Column::OwnerId.eq(auth.user.id)),
        None => public,
    }
}

/// The model, if `viewer` may see it; `NOT_FOUND` otherwise.
pub fn visible(viewer: &Viewer, model: Option<model::Model>) -> AppResult<model::Model> {
    model
        .filter(|m| can_view(viewer, m))
        .ok_or(AppError::NotFound("model"))
}

/// The caller, if they may change `model`: its owner or an administrator, with the WRITE
/// scope. Someone who cannot even see the model gets `NOT_FOUND`; someone who can see it but
/// not change it, `FORBIDDEN`.
pub fn ensure_can_edit<'v>(
    viewer: &'v Viewer,
    model: &model::Model,
) -> AppResult<&'v Authenticated> {
    if !can_view(viewer, model) {
        return Err(AppError::NotFound("model"));
    }
    let caller = viewer.require(Scope::Write)?;
    if caller.user.id == model.owner_id || caller.is_admin() {
        return Ok(caller);
    }
    Err(AppError::Forbidden(
        "only the model's owner or an administrator can do this".into(),
    ))
}
