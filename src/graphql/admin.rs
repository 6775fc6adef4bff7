//! Administration in GraphQL: the publication workflow, the dashboard, user management and the
//! audit log. Admin-only fields get their `Admin` capability from the viewer first.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::ActiveEnum;
use serde_json::Value;

use super::{
    RequestContext,
    accounts::User,
    context::loaders,
    models::{ConnectionOf, Model, ModelVersion, connection, edit},
    scalars::{BigInt, parse_id},
};
use crate::{
    entities::{
        audit_log,
        enums::{ApprovalStatus, InspectionStatus, ModelFormat, Role},
    },
    error::AppError,
    services::{
        admin::{self, Breakdown, DayCount, UserFilter},
        approvals,
        audit::{self, AuditFilter},
        pagination::{Cursor, page_size},
    },
};

/// A count for one day.
#[derive(SimpleObject)]
pub struct DailyCount {
    /// The day (UTC).
    day: NaiveDate,
    /// How many.
    count: BigInt,
}

impl From<DayCount> for DailyCount {
    fn from(value: DayCount) -> Self {
        Self {
            day: value.day,
            count: BigInt(value.count),
        }
    }
}

/// Models in one approval status.
#[derive(SimpleObject)]
pub struct StatusCount {
    status: ApprovalStatus,
    count: BigInt,
}

/// Versions with one inspection status.
#[derive(SimpleObject)]
pub struct InspectionCount {
    status: InspectionStatus,
    count: BigInt,
}

/// A model and its downloads over a period.
#[derive(SimpleObject)]
pub struct ModelDownloads {
    model: Model,
    downloads: BigInt,
}

/// Models, versions and bytes of one framework.
#[derive(SimpleObject)]
pub struct FrameworkUsage {
    framework: String,
    models: BigInt,
    versions: BigInt,
    /// Bytes referenced by the versions.
    bytes: BigInt,
}

/// Models, versions and bytes of one file format.
#[derive(SimpleObject)]
pub struct FormatUsage {
    format: ModelFormat,
    models: BigInt,
    versions: BigInt,
    /// Bytes referenced by the versions.
    bytes: BigInt,
}

/// The headline figures.
#[derive(SimpleObject)]
pub struct DashboardTotals {
    users: BigInt,
    administrators: BigInt,
    disabled_users: BigInt,
    models: BigInt,
    versions: BigInt,
    /// Bytes on disk: a file shared by several versions counts once.
    bytes_stored: BigInt,
    /// Bytes as the versions see them: shared files count per version.
    bytes_referenced: BigInt,
    /// Downloads ever counted.
    downloads: BigInt,
    /// Models waiting for review.
    pending_approvals: BigInt,
}

/// What administrators watch: totals, activity and storage.
#[derive(SimpleObject)]
pub struct AdminDashboard {
    totals: DashboardTotals,
    models_by_status: Vec<StatusCount>,
    versions_by_inspection: Vec<InspectionCount>,
    /// Downloads per day over the last 30 days, oldest first; days without any show 0.
    downloads_per_day: Vec<DailyCount>,
    /// New versions per day over the last 30 days, oldest first.
    uploads_per_day: Vec<DailyCount>,
    /// The 10 most downloaded models of the last 7 days.
    top_models_last_7_days: Vec<ModelDownloads>,
    /// The 10 most downloaded models of the last 30 days.
    top_models_last_30_days: Vec<ModelDownloads>,
    storage_by_framework: Vec<FrameworkUsage>,
    storage_by_format: Vec<FormatUsage>,
    /// The five newest accounts.
    newest_users: Vec<User>,
}

fn top(models: Vec<(crate::entities::model::Model, i64)>) -> Vec<ModelDownloads> {
    models
        .into_iter()
        .map(|(model, n)| ModelDownloads {
            model: Model(model),
            downloads: BigInt(n),
        })
        .collect()
}

impl From<admin::Dashboard> for AdminDashboard {
    fn from(d: admin::Dashboard) -> Self {
        let pending = d
            .models_by_status
            .iter()
            .filter(|(s, _)| *s == ApprovalStatus::Pending)
            .map(|(_, n)| n)
            .sum();
        let format_usage = |b: Breakdown| {
            ModelFormat::try_from_value(&b.key)
                .ok()
                .map(|format| FormatUsage {
                    format,
                    models: BigInt(b.models),
                    versions: BigInt(b.versions),
                    bytes: BigInt(b.bytes),
                })
        };
        Self {
            totals: DashboardTotals {
                users: BigInt(d.users),
                administrators: BigInt(d.administrators),
                disabled_users: BigInt(d.disabled_users),
                models: BigInt(d.models),
                versions: BigInt(d.versions),
                bytes_stored: BigInt(d.bytes_stored),
                bytes_referenced: BigInt(d.bytes_referenced),
                downloads: BigInt(d.downloads_total),
                pending_approvals: BigInt(pending),
            },
            models_by_status: d
                .models_by_status
                .into_iter()
                .map(|(status, n)| StatusCount {
                    status,
                    count: BigInt(n),
                })
                .collect(),
            versions_by_inspection: d
                .versions_by_inspection
                .into_iter()
                .map(|(status, n)| InspectionCount {
                    status,
                    count: BigInt(n),
                })
                .collect(),
            downloads_per_day: d.downloads_per_day.into_iter().map(Into::into).collect(),
            uploads_per_day: d.uploads_per_day.into_iter().map(Into::into).collect(),
            top_models_last_7_days: top(d.top_models_7_days),
            top_models_last_30_days: top(d.top_models_30_days),
            storage_by_framework: d
                .by_framework
                .into_iter()
                .map(|b| FrameworkUsage {
                    framework: b.key,
                    models: BigInt(b.models),
                    versions: BigInt(b.versions),
                    bytes: BigInt(b.bytes),
                })
                .collect(),
            storage_by_format: d.by_format.into_iter().filter_map(format_usage).collect(),
            newest_users: d.newest_users.into_iter().map(User::new).collect(),
        }
    }
}

/// One recorded action.
pub struct AuditEntry(audit_log::Model);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Who acted (null for the system).
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = self.0.actor_id else {
            return Ok(None);
        };
        let user = loaders(ctx)?
            .users
            .load_one(id)
            .await
            .map_err(|e| AppError::internal(e.to_string()))?;
        Ok(user.map(User::new))
    }

    /// What was done, e.g. `publication_approved`, `user_disabled`.
    async fn action(&self) -> &str {
        &self.0.action
    }

    /// The kind of thing acted on: `model`, `model_version` or `user`.
    async fn subject_type(&self) -> &str {
        &self.0.subject_type
    }

    /// The id of the thing acted on.
    async fn subject_id(&self) -> &str {
        &self.0.subject_id
    }

    /// The reason or note given.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// Further details.
    async fn details(&self) -> Option<Json<Value>> {
        self.0.details.clone().map(Json)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// What to narrow the user list to.
#[derive(InputObject, Default)]
pub struct UserFilterInput {
    /// Part of the username or email.
    search: Option<String>,
    role: Option<Role>,
    disabled: Option<bool>,
}

/// What to narrow the audit log to.
#[derive(InputObject, Default)]
#[graphql(name = "AuditFilter")]
pub struct AuditFilterInput {
    actor_id: Option<ID>,
    action: Option<String>,
    subject_type: Option<String>,
    subject_id: Option<String>,
}

fn after(raw: Option<String>) -> Result<Option<Cursor>, AppError> {
    raw.map(|a| Cursor::decode("after", &a)).transpose()
}

/// Administration queries.
#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Totals, activity and storage (administrators).
    async fn admin_dashboard(&self, ctx: &Context<'_>) -> Result<AdminDashboard> {
        let admin = ctx.viewer().require_admin()?;
        Ok(admin::dashboard(ctx.state(), admin).await?.into())
    }

    /// Models waiting for review, oldest request first (administrators).
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn pending_approvals(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<Model>> {
        let admin = ctx.viewer().require_admin()?;
        let page = approvals::pending(
            &ctx.state().db,
            admin,
            page_size(first)?,
            self::after(after)?,
        )
        .await?;
        Ok(connection(page, Model))
    }

    /// Accounts, newest first (administrators).
    #[graphql(
        name = "users",
        complexity = "crate::graphql::page_cost(first, child_complexity)"
    )]
    async fn user_list(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<User>> {
        let admin = ctx.viewer().require_admin()?;
        let filter = filter.unwrap_or_default();
        let filter = UserFilter {
            search: filter.search,
            role: filter.role,
            disabled: filter.disabled,
        };
        let page = admin::users(
            ctx.state(),
            admin,
            &filter,
            page_size(first)?,
            self::after(after)?,
        )
        .await?;
        Ok(connection(page, User::new))
    }

    /// Recorded actions, newest first (administrators).
    #[graphql(complexity = "crate::graphql::page_cost(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ConnectionOf<AuditEntry>> {
        let admin = ctx.viewer().require_admin()?;
        let filter = filter.unwrap_or_default();
        let filter = AuditFilter {
            actor_id: filter
                .actor_id
                .as_ref()
                .map(|id| parse_id("filter.actorId", id))
                .transpose()?,
            action: filter.action,
            subject_type: filter.subject_type,
            subject_id: filter.subject_id,
        };
        let page = audit::list(
            ctx.state(),
            admin,
            &filter,
            page_size(first)?,
            self::after(after)?,
        )
        .await?;
        Ok(connection(page, AuditEntry))
    }
}

/// Administration mutations.
#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Asks administrators to publish the model (owner or administrator): DRAFT or REJECTED →
    /// PENDING.
    async fn request_publication(&self, ctx: &Context<'_>, model_id: ID) -> Result<Model> {
        let id = parse_id("modelId", &model_id)?;
        Ok(Model(
            approvals::request_publication(ctx.state(), edit(ctx, id).await?).await?,
        ))
    }

    /// Approves a pending model: it becomes PUBLIC (administrators).
    async fn approve_model(
        &self,
        ctx: &Context<'_>,
        model_id: ID,
        note: Option<String>,
    ) -> Result<Model> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("modelId", &model_id)?;
        Ok(Model(
            approvals::approve(ctx.state(), admin, id, note.as_deref()).await?,
        ))
    }

    /// Rejects a pending model with a reason its owner sees (administrators).
    async fn reject_model(&self, ctx: &Context<'_>, model_id: ID, reason: String) -> Result<Model> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("modelId", &model_id)?;
        Ok(Model(
            approvals::reject(ctx.state(), admin, id, &reason).await?,
        ))
    }

    /// Takes a model back to PRIVATE and DRAFT (owner or administrator).
    async fn unpublish_model(&self, ctx: &Context<'_>, model_id: ID) -> Result<Model> {
        let id = parse_id("modelId", &model_id)?;
        Ok(Model(
            approvals::unpublish(ctx.state(), edit(ctx, id).await?).await?,
        ))
    }

    /// Flags a version as withdrawn: it no longer downloads or counts as current, and its
    /// aliases are taken off it (each removal kept in the alias history) (administrators).
    async fn withdraw_model_version(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> Result<ModelVersion> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("id", &id)?;
        Ok(ModelVersion(
            approvals::set_withdrawn(ctx.state(), admin, id, true, Some(&reason)).await?,
        ))
    }

    /// Releases a version the inspection gate holds as UNKNOWN or ERROR, with a written reason
    /// shown on the version and kept in the audit log (administrators). UNSAFE versions are
    /// never released (`CONFLICT`).
    async fn release_model_version(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> Result<ModelVersion> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("id", &id)?;
        Ok(ModelVersion(
            crate::services::gate::release(ctx.state(), admin, id, &reason).await?,
        ))
    }

    /// Lifts a version's withdrawal (administrators). A held version cannot come back to a
    /// public or pending model (`CONFLICT`).
    async fn restore_model_version(&self, ctx: &Context<'_>, id: ID) -> Result<ModelVersion> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("id", &id)?;
        Ok(ModelVersion(
            approvals::set_withdrawn(ctx.state(), admin, id, false, None).await?,
        ))
    }

    /// Makes a user an administrator or an ordinary user (administrators). The last enabled
    /// administrator cannot be demoted.
    async fn set_user_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> Result<User> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("userId", &user_id)?;
        Ok(User::new(
            admin::set_role(ctx.state(), admin, id, role).await?,
        ))
    }

    /// Disables an account: it can no longer log in and its tokens stop working at once
    /// (administrators). The last enabled administrator cannot be disabled.
    async fn disable_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<User> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("userId", &user_id)?;
        Ok(User::new(
            admin::set_disabled(ctx.state(), admin, id, true).await?,
        ))
    }

    /// Enables a disabled account (administrators).
    async fn enable_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<User> {
        let admin = ctx.viewer().require_admin()?;
        let id = parse_id("userId", &user_id)?;
        Ok(User::new(
            admin::set_disabled(ctx.state(), admin, id, false).await?,
        ))
    }
}
