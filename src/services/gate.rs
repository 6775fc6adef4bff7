//! The inspection gate: which versions are released. A version is released when its file was
//! positively cleared by the inspector (SAFE), or when an administrator released an UNKNOWN or
//! ERROR version with a written reason. Everything else — UNSAFE, UNKNOWN, ERROR, not yet
//! inspected — is held: it downloads only with `acceptRisk` and only for its owner and
//! administrators, `MODELHUB_UNSAFE_UPLOADS=reject` refuses it, and it can neither become
//! public nor be the current version of a listed model. An UNSAFE version is never released.

use modelhub_inspect::{Report, Status};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    audit::{self, Subject},
    versions::refresh_current_version,
};
use crate::{
    auth::Admin,
    entities::{enums::InspectionStatus, model_version, version_file},
    error::{AppError, AppResult},
    state::AppState,
};

/// Longest reason for releasing a held version.
const MAX_REASON_CHARS: usize = 2_000;

/// Whether the version's files may be handed out and published: SAFE, or UNKNOWN or ERROR
/// and released by an administrator; never UNSAFE or not yet inspected.
pub fn is_released(version: &model_version::Model) -> bool {
    released(version.inspection_status, version.released_at.is_some())
}

fn released(status: InspectionStatus, by_admin: bool) -> bool {
    match status {
        InspectionStatus::Safe => true,
        InspectionStatus::Unknown | InspectionStatus::Error => by_admin,
        InspectionStatus::Unsafe | InspectionStatus::Pending => false,
    }
}

/// The SQL condition selecting released versions (the same rule as [`is_released`]).
pub fn released_condition() -> Condition {
    Condition::any()
        .add(model_version::Column::InspectionStatus.eq(InspectionStatus::Safe))
        .add(
            Condition::all()
                .add(
                    model_version::Column::InspectionStatus
                        .is_in([InspectionStatus::Unknown, InspectionStatus::Error]),
                )
                .add(model_version::Column::ReleasedAt.is_not_null()),
        )
}

/// Why a report holds its file, in words for the uploader; `None` when it is cleared.
pub fn hold_reason(report: &Report) -> Option<String> {
    match report.status() {
        Status::Safe => None,
        Status::Unsafe => Some(format!(
            "it runs code when loaded ({})",
            report.dangerous().join(", ")
        )),
        Status::Error => Some(format!(
            "its inspection could not finish ({})",
            report.error.as_deref().unwrap_or("no reason recorded")
        )),
        Status::Unknown => {
            let unknown: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.severity == modelhub_inspect::Severity::Unknown)
                .take(8)
                .map(|f| format!("{}.{}", f.module, f.name))
                .collect();
            Some(if unknown.is_empty() {
                "nothing could vouch for its content".to_owned()
            } else {
                format!(
                    "it uses names outside the allowlist ({})",
                    unknown.join(", ")
                )
            })
        }
    }
}

/// A stored inspection report, if it can be read.
pub fn stored_report(json: Option<&serde_json::Value>) -> Option<Report> {
    json.and_then(|json| serde_json::from_value::<Report>(json.clone()).ok())
}

/// Why something stored with this verdict and report is held (it is not released).
fn stored_hold_reason(status: InspectionStatus, json: Option<&serde_json::Value>) -> String {
    match (status, stored_report(json)) {
        (InspectionStatus::Pending, _) => "it has not been inspected yet".to_owned(),
        (_, Some(report)) => {
            hold_reason(&report).unwrap_or_else(|| "its inspection did not clear it".to_owned())
        }
        (_, None) => "its inspection report cannot be read".to_owned(),
    }
}

/// Why a stored version is held, if it is.
pub fn version_hold_reason(version: &model_version::Model) -> Option<String> {
    (!is_released(version))
        .then(|| stored_hold_reason(version.inspection_status, version.inspection.as_ref()))
}

/// Why one file of a stored version is held, if it is: each file has its own verdict, under
/// the version's rule (see [`is_released`]) with the version's release.
pub fn file_hold_reason(
    version: &model_version::Model,
    file: &version_file::Model,
) -> Option<String> {
    (!released(file.inspection_status, version.released_at.is_some()))
        .then(|| stored_hold_reason(file.inspection_status, file.inspection.as_ref()))
}

/// Refuses to list a model (request publication, approve, restore a version) while a version
/// that is not withdrawn is held, naming each and why. Run inside the transaction that lists
/// the model, after its row is locked by the update.
pub async fn ensure_publishable<C: ConnectionTrait>(db: &C, model_id: Uuid) -> AppResult<()> {
    let held = model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model_id))
        .filter(model_version::Column::WithdrawnAt.is_null())
        .filter(Condition::not(released_condition()))
        .limit(20)
        .all(db)
        .await?;
    if held.is_empty() {
        return Ok(());
    }
    let described: Vec<String> = held
        .iter()
        .map(|v| {
            format!(
                "{} ({})",
                v.version,
                version_hold_reason(v).unwrap_or_default()
            )
        })
        .collect();
    Err(AppError::Conflict(format!(
        "the model has versions held by the inspection gate and cannot be made public: {}; \
         delete or withdraw them, or have an administrator release an UNKNOWN or ERROR one",
        described.join("; ")
    )))
}

/// Releases a held UNKNOWN or ERROR version with a reason (administrators; audited). An
/// UNSAFE version is never released.
pub async fn release(
    state: &AppState,
    admin: Admin<'_>,
    version_id: Uuid,
    reason: &str,
) -> AppResult<model_version::Model> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::bad_input("reason", "must not be empty"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::bad_input(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let txn = sea_orm::TransactionTrait::begin(&state.db).await?;
    let result = model_version::Entity::update_many()
        .col_expr(
            model_version::Column::ReleasedAt,
            Expr::value(Some(super::now())),
        )
        .col_expr(
            model_version::Column::ReleasedBy,
            Expr::value(Some(admin.id())),
        )
        .col_expr(
            model_version::Column::ReleaseReason,
            Expr::value(Some(reason.to_owned())),
        )
        .filter(model_version::Column::Id.eq(version_id))
        .filter(
            model_version::Column::InspectionStatus
                .is_in([InspectionStatus::Unknown, InspectionStatus::Error]),
        )
        .exec(&txn)
        .await?;
    let version = model_version::Entity::find_by_id(version_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("model version"))?;
    if result.rows_affected == 0 {
        return Err(AppError::Conflict(match version.inspection_status {
            InspectionStatus::Unsafe => {
                "the version runs code when loaded; UNSAFE versions are never released".into()
            }
            InspectionStatus::Safe => "the version is not held".into(),
            _ => "the version has not been inspected yet".into(),
        }));
    }
    refresh_current_version(&txn, version.model_id).await?;
    audit::record(
        &txn,
        Some(admin.id()),
        "version_released",
        Subject::Version(version_id),
        Some(reason),
        Some(serde_json::json!({
            "model_id": version.model_id,
            "inspection_status": format!("{:?}", version.inspection_status).to_uppercase(),
        })),
    )
    .await?;
    super::commit_change(state, txn).await?;
    tracing::info!(version_id = %version_id, admin_id = %admin.id(), "held version released");
    Ok(version)
}
