//! The publication workflow. A model starts PRIVATE and DRAFT; its owner requests publication
//! (PENDING); an administrator approves it (APPROVED, PUBLIC to everyone) or rejects it with a
//! reason (REJECTED; the owner may edit and ask again); the owner or an administrator can
//! unpublish it (back to PRIVATE and DRAFT). Each step is a conditional update, so two
//! concurrent decisions cannot both apply, and is audited in the same transaction.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
    sea_query::{Condition, Expr},
};
use uuid::Uuid;

use super::{
    access::{self, ModelEdit},
    audit::{self, Subject},
    events::Change,
    gate,
    pagination::{Cursor, Page, SortValue},
    versions::{is_listed_locked, refresh_current_version},
};
use crate::{
    auth::Admin,
    entities::{
        enums::{ApprovalStatus, EventKind},
        model, model_version,
    },
    error::{AppError, AppResult},
    state::AppState,
};

/// Longest review note or rejection reason.
const MAX_REASON_CHARS: usize = 2_000;

fn status_name(status: ApprovalStatus) -> &'static str {
    match status {
        ApprovalStatus::Draft => "DRAFT",
        ApprovalStatus::Pending => "PENDING",
        ApprovalStatus::Approved => "APPROVED",
        ApprovalStatus::Rejected => "REJECTED",
    }
}

fn reason(field: &str, raw: Option<&str>, required: bool) -> AppResult<Option<String>> {
    let text = raw.map(str::trim).filter(|s| !s.is_empty());
    match text {
        None if required => Err(AppError::bad_input(field, "must not be empty")),
        Some(t) if t.chars().count() > MAX_REASON_CHARS => Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_REASON_CHARS} characters"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// One workflow step: the new state, and which states it may start from.
struct Step<'a> {
    action: &'static str,
    from: &'a [ApprovalStatus],
    to: ApprovalStatus,
    note: Option<String>,
    submitted: bool,
    /// The change event it makes, if others react to it.
    event: Option<EventKind>,
}

impl Step<'_> {
    /// Whether the step lists the model, which the inspection gate must allow.
    fn lists(&self) -> bool {
        super::versions::is_listed(self.to)
    }
}

/// Applies a step to a model if it is in one of the step's starting states; `CONFLICT` naming
/// the current state otherwise. Returns the updated model.
async fn apply(
    state: &AppState,
    actor: Uuid,
    model_id: Uuid,
    step: Step<'_>,
) -> AppResult<model::Model> {
    let txn = state.db.begin().await?;
    let now = super::now();
    let mut update = model::Entity::update_many()
        .col_expr(model::Column::ApprovalStatus, Expr::value(step.to))
        .col_expr(
            model::Column::Visibility,
            Expr::value(access::visibility_of(step.to)),
        )
        .col_expr(model::Column::ReviewNote, Expr::value(step.note.clone()))
        .col_expr(model::Column::UpdatedAt, Expr::value(now));
    if step.submitted {
        update = update.col_expr(model::Column::SubmittedAt, Expr::value(Some(now)));
    }
    let result = update
        .filter(model::Column::Id.eq(model_id))
        .filter(model::Column::ApprovalStatus.is_in(step.from.iter().copied()))
        .exec(&txn)
        .await?;
    let current = model::Entity::find_by_id(model_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("model"))?;
    if result.rows_affected == 0 {
        return Err(AppError::Conflict(format!(
            "the model is {}; {} is not possible from there",
            status_name(current.approval_status),
            step.action
        )));
    }
    if step.lists() {
        // After the update, under its row lock: an upload deciding at the same time sees the
        // new state, or its held version is seen here.
        gate::ensure_publishable(&txn, model_id).await?;
    }
    audit::record(
        &txn,
        Some(actor),
        step.action,
        Subject::Model(model_id),
        step.note.as_deref(),
        None,
    )
    .await?;
    if let Some(kind) = step.event {
        super::events::record(
            &txn,
            Change {
                kind,
                model: &current,
                version: None,
                actor: Some(actor),
                data: serde_json::json!({ "note": step.note }),
            },
        )
        .await?;
    }
    super::commit_change(state, txn).await?;
    tracing::info!(model_id = %model_id, actor_id = %actor, action = step.action, "publication workflow");
    Ok(current)
}

/// PRIVATE/DRAFT or REJECTED → PENDING (owner or administrator). The model needs a version.
pub async fn request_publication(
    state: &AppState,
    target: ModelEdit<'_>,
) -> AppResult<model::Model> {
    let model = target.model();
    if model.current_version_id.is_none() {
        return Err(AppError::Conflict(
            "the model has no downloadable version to publish".into(),
        ));
    }
    apply(
        state,
        target.actor(),
        model.id,
        Step {
            action: "publication_requested",
            from: &[ApprovalStatus::Draft, ApprovalStatus::Rejected],
            to: ApprovalStatus::Pending,
            note: None,
            submitted: true,
            event: Some(EventKind::PublicationRequested),
        },
    )
    .await
}

async fn find_any(state: &AppState, model_id: Uuid) -> AppResult<model::Model> {
    model::Entity::find_by_id(model_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("model"))
}

/// PENDING → APPROVED and PUBLIC (administrators).
pub async fn approve(
    state: &AppState,
    admin: Admin<'_>,
    model_id: Uuid,
    note: Option<&str>,
) -> AppResult<model::Model> {
    find_any(state, model_id).await?;
    apply(
        state,
        admin.id(),
        model_id,
        Step {
            action: "publication_approved",
            from: &[ApprovalStatus::Pending],
            to: ApprovalStatus::Approved,
            note: reason("note", note, false)?,
            submitted: false,
            event: Some(EventKind::PublicationApproved),
        },
    )
    .await
}

/// PENDING → REJECTED with a reason the owner sees (administrators).
pub async fn reject(
    state: &AppState,
    admin: Admin<'_>,
    model_id: Uuid,
    why: &str,
) -> AppResult<model::Model> {
    let why = reason("reason", Some(why), true)?;
    find_any(state, model_id).await?;
    apply(
        state,
        admin.id(),
        model_id,
        Step {
            action: "publication_rejected",
            from: &[ApprovalStatus::Pending],
            to: ApprovalStatus::Rejected,
            note: why,
            submitted: false,
            event: Some(EventKind::PublicationRejected),
        },
    )
    .await
}

/// APPROVED or PENDING → PRIVATE and DRAFT (owner or administrator).
pub async fn unpublish(state: &AppState, target: ModelEdit<'_>) -> AppResult<model::Model> {
    apply(
        state,
        target.actor(),
        target.model().id,
        Step {
            action: "unpublished",
            from: &[ApprovalStatus::Approved, ApprovalStatus::Pending],
            to: ApprovalStatus::Draft,
            note: None,
            submitted: false,
            event: None,
        },
    )
    .await
}

/// Flags a version as withdrawn (it no longer downloads, stops being current and loses its
/// aliases), or lifts the flag (administrators).
pub async fn set_withdrawn(
    state: &AppState,
    admin: Admin<'_>,
    version_id: Uuid,
    withdrawn: bool,
    why: Option<&str>,
) -> AppResult<model_version::Model> {
    let why = reason("reason", why, withdrawn)?;
    let version = model_version::Entity::find_by_id(version_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("model version"))?;
    let txn = super::begin_write(state).await?;
    let at = withdrawn.then(super::now);
    model_version::Entity::update_many()
        .col_expr(model_version::Column::WithdrawnAt, Expr::value(at))
        .col_expr(
            model_version::Column::WithdrawnReason,
            Expr::value(why.clone()),
        )
        .filter(model_version::Column::Id.eq(version_id))
        .exec(&txn)
        .await?;
    // The version as it is now, in this transaction (a re-inspection may have moved it).
    let current = model_version::Entity::find_by_id(version_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("model version"))?;
    if !withdrawn
        && !gate::is_released(&current)
        && is_listed_locked(&txn, version.model_id).await?
    {
        return Err(AppError::Conflict(format!(
            "version {} is held by the inspection gate ({}); a public or pending model cannot take it back",
            version.version,
            gate::version_hold_reason(&current).unwrap_or_default()
        )));
    }
    refresh_current_version(&txn, version.model_id).await?;
    let action = if withdrawn {
        "version_withdrawn"
    } else {
        "version_restored"
    };
    audit::record(
        &txn,
        Some(admin.id()),
        action,
        Subject::Version(version_id),
        why.as_deref(),
        None,
    )
    .await?;
    let updated = model_version::Entity::find_by_id(version_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("model version"))?;
    if withdrawn {
        let model = model::Entity::find_by_id(version.model_id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("model"))?;
        super::events::record(
            &txn,
            Change {
                kind: EventKind::VersionWithdrawn,
                model: &model,
                version: Some(&updated),
                actor: Some(admin.id()),
                data: serde_json::json!({ "reason": why }),
            },
        )
        .await?;
        super::aliases::release_withdrawn(&txn, &model, version_id, admin.id()).await?;
    }
    super::commit_change(state, txn).await?;
    Ok(updated)
}

/// The approval queue, oldest request first (administrators).
pub async fn pending<C: ConnectionTrait>(
    db: &C,
    _admin: Admin<'_>,
    size: usize,
    after: Option<Cursor>,
) -> AppResult<Page<model::Model>> {
    let base =
        model::Entity::find().filter(model::Column::ApprovalStatus.eq(ApprovalStatus::Pending));
    let total = base.clone().count(db).await?;
    let mut query = base;
    if let Some(cursor) = &after {
        let SortValue::Time(at) = cursor.value else {
            return Err(AppError::bad_input("after", "is not a cursor of this list"));
        };
        query = query.filter(
            Condition::any().add(model::Column::SubmittedAt.gt(at)).add(
                Condition::all()
                    .add(model::Column::SubmittedAt.eq(at))
                    .add(model::Column::Id.gt(cursor.id)),
            ),
        );
    }
    let rows = query
        .order_by_asc(model::Column::SubmittedAt)
        .order_by_asc(model::Column::Id)
        .limit(size as u64 + 1)
        .all(db)
        .await?;
    Ok(Page::from_rows(
        rows,
        size,
        after.is_some(),
        Some(total),
        |m| Cursor {
            value: m.submitted_at.map_or(SortValue::None, SortValue::Time),
            id: m.id,
        },
    ))
}
