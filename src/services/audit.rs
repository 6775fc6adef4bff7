//! The audit log: every administrative decision and destructive change, written in the same
//! transaction as the change it records.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Set,
};
use serde_json::Value;
use uuid::Uuid;

use super::pagination::{Cursor, Page, newest_first};
use crate::{auth::Admin, entities::audit_log, error::AppResult, state::AppState};

/// What an entry is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Model(Uuid),
    Version(Uuid),
    User(Uuid),
    ApiToken(Uuid),
}

impl Subject {
    fn parts(self) -> (&'static str, String) {
        match self {
            Self::Model(id) => ("model", id.to_string()),
            Self::Version(id) => ("model_version", id.to_string()),
            Self::User(id) => ("user", id.to_string()),
            Self::ApiToken(id) => ("api_token", id.to_string()),
        }
    }
}

/// Appends an entry: `actor` did `action` to `subject`, for `reason`.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: Option<Uuid>,
    action: &str,
    subject: Subject,
    reason: Option<&str>,
    details: Option<Value>,
) -> AppResult<()> {
    let (subject_type, subject_id) = subject.parts();
    audit_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        actor_id: Set(actor),
        action: Set(action.to_owned()),
        subject_type: Set(subject_type.to_owned()),
        subject_id: Set(subject_id),
        reason: Set(reason.map(str::to_owned)),
        details: Set(details),
        created_at: Set(super::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// What an audit log listing may be narrowed to.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
}

/// A page of the audit log, newest first (administrators).
pub async fn list(
    state: &AppState,
    _admin: Admin<'_>,
    filter: &AuditFilter,
    size: usize,
    after: Option<Cursor>,
) -> AppResult<Page<audit_log::Model>> {
    let mut condition = Condition::all();
    if let Some(actor) = filter.actor_id {
        condition = condition.add(audit_log::Column::ActorId.eq(actor));
    }
    if let Some(action) = &filter.action {
        condition = condition.add(audit_log::Column::Action.eq(action.trim()));
    }
    if let Some(subject_type) = &filter.subject_type {
        condition = condition.add(audit_log::Column::SubjectType.eq(subject_type.trim()));
    }
    if let Some(subject_id) = &filter.subject_id {
        condition = condition.add(audit_log::Column::SubjectId.eq(subject_id.trim()));
    }
    newest_first(
        state,
        audit_log::Entity::find().filter(condition),
        audit_log::Column::Id,
        size,
        after,
        |row| row.id,
    )
    .await
}
