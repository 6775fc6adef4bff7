//! The access policy: who may see, read the private side of, change and administer what.
//! Every transport asks it — GraphQL queries, fields and mutations, the file routes and signed
//! links. To anyone who may not see it, a private model does not exist: the same `NOT_FOUND`
//! as an id that was never used. Changes take a [`ModelEdit`], administration an
//! [`Admin`](crate::auth::Admin), which only this policy and the viewer make.

use sea_orm::{
    ColumnTrait, Condition, DatabaseBackend,
    sea_query::{Expr, ExprTrait},
};

use uuid::Uuid;

use crate::{
    auth::{Authenticated, Scope, Viewer},
    domain::alias::AliasName,
    entities::{
        enums::{ApprovalStatus, Role, Visibility},
        model, user,
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
    ("setAlias", Requirement::Scope(Scope::Write)),
    ("removeAlias", Requirement::Scope(Scope::Write)),
    ("createVersionDraft", Requirement::Scope(Scope::Write)),
    ("addDraftFiles", Requirement::Scope(Scope::Write)),
    ("commitDraft", Requirement::Scope(Scope::Write)),
    ("discardDraft", Requirement::Scope(Scope::Write)),
    ("requestPublication", Requirement::Scope(Scope::Write)),
    ("unpublishModel", Requirement::Scope(Scope::Write)),
    ("approveModel", Requirement::Admin),
    ("rejectModel", Requirement::Admin),
    ("withdrawModelVersion", Requirement::Admin),
    ("releaseModelVersion", Requirement::Admin),
    ("restoreModelVersion", Requirement::Admin),
    ("createWebhook", Requirement::Scope(Scope::Write)),
    ("updateWebhook", Requirement::Scope(Scope::Write)),
    ("rotateWebhookSecret", Requirement::Scope(Scope::Write)),
    ("deleteWebhook", Requirement::Scope(Scope::Write)),
    ("pingWebhook", Requirement::Scope(Scope::Write)),
    ("redeliverWebhookDelivery", Requirement::Scope(Scope::Write)),
    ("setUserRole", Requirement::Admin),
    ("disableUser", Requirement::Admin),
    ("enableUser", Requirement::Admin),
    // Runs what may be downloaded, by the download rule (READ for tokens, public models for
    // anonymous callers), before anything runs.
    ("predict", Requirement::Anyone),
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

/// The account that may send a resumable upload: one signed in with the WRITE scope, as for
/// every upload mutation.
pub fn ensure_may_upload(viewer: &Viewer) -> AppResult<Uuid> {
    Ok(viewer.require(Scope::Write)?.user.id)
}

/// Whether account `caller` may continue, read or attach a resumable upload of `owner`: only
/// its own (an administrator has no use for another's half-sent bytes).
pub fn holds_upload(caller: Uuid, owner: Uuid) -> bool {
    caller == owner
}

/// Whether `viewer` may see `model`.
pub fn can_view(viewer: &Viewer, model: &model::Model) -> bool {
    sees(viewer.is_admin(), viewer.user_id(), model)
}

/// Whether a caller (an administrator or not, signed in as `user` or not) may see `model`.
fn sees(admin: bool, user: Option<Uuid>, model: &model::Model) -> bool {
    is_public(model) || admin || user == Some(model.owner_id)
}

/// Whether the model is visible to everyone.
pub fn is_public(model: &model::Model) -> bool {
    model.visibility == Visibility::Public && model.approval_status == ApprovalStatus::Approved
}

/// The visibility a model in `status` has: public exactly when approved. Every write of a
/// model's status writes this beside it, so the two columns cannot disagree.
pub fn visibility_of(status: ApprovalStatus) -> Visibility {
    match status {
        ApprovalStatus::Approved => Visibility::Public,
        ApprovalStatus::Draft | ApprovalStatus::Pending | ApprovalStatus::Rejected => {
            Visibility::Private
        }
    }
}

/// Whether `viewer` may read the private side of a model it can see: its review note,
/// download statistics, and (at their own risk) files the inspection gate holds. Its owner
/// and administrators may.
pub fn may_read_private(viewer: &Viewer, model: &model::Model) -> bool {
    viewer.is_admin() || viewer.user_id() == Some(model.owner_id)
}

/// Whether `viewer` may read an account's private fields (email, usage, API tokens): the
/// account itself and administrators may.
pub fn may_read_account(viewer: &Viewer, account: Uuid) -> bool {
    viewer.is_admin() || viewer.user_id() == Some(account)
}

/// Refuses a signed-in caller whose credential lacks READ (anonymous callers read public
/// models).
pub fn ensure_may_read(viewer: &Viewer) -> AppResult<()> {
    if viewer.authenticated().is_some() {
        viewer.require(Scope::Read)?;
    }
    Ok(())
}

/// Whether a signed link minted by `holder` (none: an anonymous caller's link, for a public
/// model) may fetch a file of `model` now. The holder's account is read again when the link
/// is used, so a model made private or an account disabled closes its links; the link's
/// credential is checked by the caller.
pub fn link_may_view(holder: Option<&user::Model>, model: &model::Model) -> bool {
    match holder {
        _ if is_public(model) => true,
        Some(user) if !user.disabled => user.role == Role::Admin || user.id == model.owner_id,
        _ => false,
    }
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

/// Proof that the caller may change one model: its owner or an administrator, with the WRITE
/// scope. Only [`edit`] makes one, and every service that changes a model takes one, so a
/// change without the check does not compile.
#[derive(Debug)]
pub struct ModelEdit<'v> {
    model: model::Model,
    caller: &'v Authenticated,
}

impl ModelEdit<'_> {
    /// The model, as read when the right was checked.
    pub fn model(&self) -> &model::Model {
        &self.model
    }

    /// Who is changing it.
    pub fn actor(&self) -> Uuid {
        self.caller.user.id
    }

    /// Whether the change is made by someone other than the owner (an administrator).
    pub fn by_other(&self) -> bool {
        self.caller.user.id != self.model.owner_id
    }

    /// Whether the caller making the change may see `other` (a model it names).
    pub fn may_see(&self, other: &model::Model) -> bool {
        sees(self.caller.is_admin(), Some(self.caller.user.id), other)
    }
}

/// The right to change `model`, if the viewer has it. Someone who cannot even see the model
/// gets `NOT_FOUND`; someone who can see it but not change it, `FORBIDDEN`.
pub fn edit(viewer: &Viewer, model: Option<model::Model>) -> AppResult<ModelEdit<'_>> {
    let model = visible(viewer, model)?;
    let caller = viewer.require(Scope::Write)?;
    if caller.user.id == model.owner_id || caller.is_admin() {
        return Ok(ModelEdit { model, caller });
    }
    Err(AppError::Forbidden(
        "only the model's owner or an administrator can do this".into(),
    ))
}

/// Whether the caller of `target` may move its model's alias `alias`: anyone who may change
/// the model, but a `protected` alias only an administrator or a credential with the PROMOTE
/// scope (`FORBIDDEN` otherwise).
pub fn ensure_may_move_alias(
    target: &ModelEdit<'_>,
    alias: &AliasName,
    protected: &[AliasName],
) -> AppResult<()> {
    let caller = target.caller;
    if !protected.contains(alias) || caller.is_admin() || caller.scopes.contains(Scope::Promote) {
        return Ok(());
    }
    Err(AppError::Forbidden(format!(
        "`{alias}` is a protected alias: only administrators and API tokens with the PROMOTE \
         scope move it"
    )))
}

/// Whether `viewer` may learn that a model owned by `owner` was deleted: its owner and
/// administrators may, and everyone when it was public.
pub fn may_see_deleted(viewer: &Viewer, owner: Option<Uuid>, was_public: bool) -> bool {
    was_public || viewer.is_admin() || (owner.is_some() && viewer.user_id() == owner)
}

/// Whether the account that made a webhook may receive an event of a model `event_owner`
/// owns: an enabled administrator every model's, anyone else only their own models'.
pub fn webhook_may_receive(maker: &user::Model, event_owner: Option<Uuid>) -> bool {
    !maker.disabled && (maker.role == Role::Admin || Some(maker.id) == event_owner)
}

/// Whether the viewer may manage a webhook whose model was deleted: the account that made it
/// and administrators, with WRITE. (A live model's webhooks are managed by whoever may change
/// the model, the global ones by administrators.)
pub fn may_manage_retired_webhook(viewer: &Viewer, maker: Uuid) -> AppResult<bool> {
    let caller = viewer.require(Scope::Write)?;
    Ok(caller.is_admin() || caller.user.id == maker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_public_exactly_when_approved() {
        use sea_orm::Iterable;
        for status in ApprovalStatus::iter() {
            assert_eq!(
                visibility_of(status) == Visibility::Public,
                status == ApprovalStatus::Approved,
                "{status:?}"
            );
        }
    }
}
