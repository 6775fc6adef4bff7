//! Administration: the dashboard's figures (aggregate SQL, identical on SQLite and
//! PostgreSQL) and user management, with the last administrator protected.

use chrono::{Duration, NaiveDate};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QueryResult, QuerySelect,
    sea_query::{Alias, Expr, ExprTrait, Func, IntoIden, Order, Query, SelectStatement},
};
use uuid::Uuid;

use super::{
    audit::{self, Subject},
    pagination::{Cursor, Page, newest_first},
};
use crate::{
    auth::Admin,
    entities::{
        download_event,
        enums::{ApprovalStatus, InspectionStatus, Role},
        model, model_version, user, version_file,
    },
    error::{AppError, AppResult},
    state::AppState,
};

/// A count for one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub day: NaiveDate,
    pub count: i64,
}

/// Models, versions and bytes for one framework or format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdown {
    pub key: String,
    pub models: i64,
    pub versions: i64,
    pub bytes: i64,
}

/// Everything the admin dashboard shows.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub users: i64,
    pub administrators: i64,
    pub disabled_users: i64,
    pub models: i64,
    pub models_by_status: Vec<(ApprovalStatus, i64)>,
    pub versions: i64,
    pub versions_by_inspection: Vec<(InspectionStatus, i64)>,
    /// Bytes on disk: each distinct file once.
    pub bytes_stored: i64,
    /// Bytes as versions see them: shared files counted per version.
    pub bytes_referenced: i64,
    pub downloads_total: i64,
    /// The last 30 days, oldest first, days without downloads included.
    pub downloads_per_day: Vec<DayCount>,
    /// New versions per day over the last 30 days, oldest first.
    pub uploads_per_day: Vec<DayCount>,
    pub top_models_7_days: Vec<(model::Model, i64)>,
    pub top_models_30_days: Vec<(model::Model, i64)>,
    pub by_framework: Vec<Breakdown>,
    pub by_format: Vec<Breakdown>,
    pub newest_users: Vec<user::Model>,
}

/// Days covered by the per-day series.
pub const SERIES_DAYS: i64 = 30;

fn get_i64(row: &QueryResult, column: &str) -> AppResult<i64> {
    Ok(row.try_get::<i64>("", column)?)
}

/// `CAST(COALESCE(SUM(expr), 0) AS BIGINT)`: the same integer type on both databases.
fn sum_bigint(expr: Expr) -> Expr {
    Expr::expr(Func::cast_as(
        Func::coalesce([Expr::expr(Func::sum(expr)), Expr::val(0)]),
        Alias::new("BIGINT"),
    ))
}

async fn scalar<C: ConnectionTrait>(db: &C, select: &SelectStatement) -> AppResult<i64> {
    let row = db
        .query_one(select)
        .await?
        .ok_or_else(|| AppError::internal("an aggregate returned no row"))?;
    get_i64(&row, "n")
}

/// Rows of `table` counted per value of `column`.
async fn count_by<C, E, Col, T>(db: &C, table: E, column: Col) -> AppResult<Vec<(T, i64)>>
where
    C: ConnectionTrait,
    E: sea_orm::EntityTrait,
    Col: sea_orm::ColumnTrait,
    T: sea_orm::TryGetable,
{
    let rows = db
        .query_all(
            &Query::select()
                .expr_as(Expr::col(column), Alias::new("k"))
                .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
                .from(table)
                .group_by_col(column)
                .take(),
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<T>("", "k")?, get_i64(row, "n")?)))
        .collect()
}

/// Zero-filled daily series for the `days` days ending `today`.
pub fn fill_days(today: NaiveDate, days: i64, counts: &[(NaiveDate, i64)]) -> Vec<DayCount> {
    (0..days)
        .rev()
        .map(|back| {
            let day = today - Duration::days(back);
            let count = counts
                .iter()
                .filter(|(d, _)| *d == day)
                .map(|(_, n)| n)
                .sum();
            DayCount { day, count }
        })
        .collect()
}

/// The day of a timestamp column in UTC, as `YYYY-MM-DD` text, on either database.
fn utc_day(backend: DatabaseBackend, column: &str) -> Expr {
    match backend {
        DatabaseBackend::Postgres => Expr::cust(format!(
            "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        )),
        _ => Expr::cust(format!("date({column})")),
    }
}

/// Downloads per model since `since`, most first, at most `limit`.
async fn top_models<C: ConnectionTrait>(
    db: &C,
    since: NaiveDate,
    limit: u64,
) -> AppResult<Vec<(model::Model, i64)>> {
    let select = Query::select()
        .column(download_event::Column::ModelId)
        .expr_as(
            Expr::col(download_event::Column::Id).count(),
            Alias::new("n"),
        )
        .from(download_event::Entity)
        .and_where(Expr::col(download_event::Column::Day).gte(since))
        .and_where(
            Expr::col(download_event::Column::ModelId).in_subquery(
                Query::select()
                    .column(model::Column::Id)
                    .from(model::Entity)
                    .take(),
            ),
        )
        .group_by_col(download_event::Column::ModelId)
        .order_by_expr(Expr::col(download_event::Column::Id).count(), Order::Desc)
        .order_by(download_event::Column::ModelId, Order::Asc)
        .limit(limit)
        .take();
    let rows = db.query_all(&select).await?;
    let mut counts = Vec::with_capacity(rows.len());
    for row in rows {
        counts.push((row.try_get::<Uuid>("", "model_id")?, get_i64(&row, "n")?));
    }
    let models = model::Entity::find()
        .filter(model::Column::Id.is_in(counts.iter().map(|(id, _)| *id)))
        .all(db)
        .await?;
    Ok(counts
        .into_iter()
        .filter_map(|(id, n)| models.iter().find(|m| m.id == id).map(|m| (m.clone(), n)))
        .collect())
}

/// Adds the `models`, `versions` and `bytes` aggregates over `models` joined with
/// `model_versions`.
fn with_usage_columns(select: &mut SelectStatement) -> &mut SelectStatement {
    select
        .expr_as(
            Expr::col((model::Entity, model::Column::Id)).count_distinct(),
            Alias::new("models"),
        )
        .expr_as(
            Expr::col((model_version::Entity, model_version::Column::Id)).count(),
            Alias::new("versions"),
        )
        .expr_as(
            sum_bigint(Expr::col((
                model_version::Entity,
                model_version::Column::SizeBytes,
            ))),
            Alias::new("bytes"),
        )
}

/// Models, versions and bytes grouped by a model or version column.
async fn breakdown<C: ConnectionTrait>(db: &C, key: Expr) -> AppResult<Vec<Breakdown>> {
    let select = with_usage_columns(Query::select().expr_as(key.clone(), Alias::new("k")))
        .from(model_version::Entity)
        .inner_join(
            model::Entity,
            Expr::col((model::Entity, model::Column::Id))
                .equals((model_version::Entity, model_version::Column::ModelId)),
        )
        .add_group_by([key])
        .order_by(Alias::new("bytes").into_iden(), Order::Desc)
        .take();
    let rows = db.query_all(&select).await?;
    rows.iter()
        .map(|row| {
            Ok(Breakdown {
                key: row.try_get::<String>("", "k")?,
                models: get_i64(row, "models")?,
                versions: get_i64(row, "versions")?,
                bytes: get_i64(row, "bytes")?,
            })
        })
        .collect()
}

/// Computes the dashboard (administrators).
pub async fn dashboard(state: &AppState, _admin: Admin<'_>) -> AppResult<Dashboard> {
    let db = &state.db;
    let backend = db.get_database_backend();
    let today = super::now().date_naive();
    let series_start = today - Duration::days(SERIES_DAYS - 1);
    let count_all = |table: Alias| {
        Query::select()
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .from(table)
            .take()
    };

    let users = scalar(db, &count_all(Alias::new("users"))).await?;
    let administrators = user::Entity::find()
        .filter(user::Column::Role.eq(Role::Admin))
        .count(db)
        .await? as i64;
    let disabled_users = user::Entity::find()
        .filter(user::Column::Disabled.eq(true))
        .count(db)
        .await? as i64;

    let models_by_status: Vec<(ApprovalStatus, i64)> =
        count_by(db, model::Entity, model::Column::ApprovalStatus).await?;
    let models = models_by_status.iter().map(|(_, n)| n).sum();
    let versions_by_inspection: Vec<(InspectionStatus, i64)> = count_by(
        db,
        model_version::Entity,
        model_version::Column::InspectionStatus,
    )
    .await?;
    let versions = versions_by_inspection.iter().map(|(_, n)| n).sum();

    let bytes_referenced = scalar(
        db,
        &Query::select()
            .expr_as(
                sum_bigint(Expr::col(model_version::Column::SizeBytes)),
                Alias::new("n"),
            )
            .from(model_version::Entity)
            .take(),
    )
    .await?;
    let distinct_blobs = Query::select()
        .distinct()
        .columns([
            version_file::Column::Sha256,
            version_file::Column::SizeBytes,
        ])
        .from(version_file::Entity)
        .take();
    let bytes_stored = scalar(
        db,
        &Query::select()
            .expr_as(
                sum_bigint(Expr::col(Alias::new("size_bytes"))),
                Alias::new("n"),
            )
            .from_subquery(distinct_blobs, Alias::new("blobs"))
            .take(),
    )
    .await?;

    let downloads_total = scalar(db, &count_all(Alias::new("download_events"))).await?;
    let per_day = downloads_by_day(db, series_start, None).await?;
    let downloads_per_day = fill_days(today, SERIES_DAYS, &per_day);

    let upload_day = utc_day(backend, "created_at");
    let rows = db
        .query_all(
            &Query::select()
                .expr_as(upload_day.clone(), Alias::new("d"))
                .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
                .from(model_version::Entity)
                .and_where(
                    Expr::col(model_version::Column::CreatedAt)
                        .gte(series_start.and_hms_opt(0, 0, 0).map(|t| t.and_utc())),
                )
                .add_group_by([upload_day])
                .take(),
        )
        .await?;
    let mut uploads = Vec::new();
    for row in rows {
        let day: String = row.try_get("", "d")?;
        let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(AppError::internal)?;
        uploads.push((day, get_i64(&row, "n")?));
    }
    let uploads_per_day = fill_days(today, SERIES_DAYS, &uploads);

    let top_models_7_days = top_models(db, today - Duration::days(6), 10).await?;
    let top_models_30_days = top_models(db, series_start, 10).await?;
    let by_framework = breakdown(db, Expr::col((model::Entity, model::Column::Framework))).await?;
    let by_format = breakdown(
        db,
        Expr::col((model_version::Entity, model_version::Column::Format)),
    )
    .await?;
    let newest_users = user::Entity::find()
        .order_by_desc(user::Column::Id)
        .limit(5)
        .all(db)
        .await?;

    Ok(Dashboard {
        users,
        administrators,
        disabled_users,
        models,
        models_by_status,
        versions,
        versions_by_inspection,
        bytes_stored,
        bytes_referenced,
        downloads_total,
        downloads_per_day,
        uploads_per_day,
        top_models_7_days,
        top_models_30_days,
        by_framework,
        by_format,
        newest_users,
    })
}

/// Downloads counted per day since `since`, of one model or of all.
async fn downloads_by_day<C: ConnectionTrait>(
    db: &C,
    since: NaiveDate,
    model_id: Option<Uuid>,
) -> AppResult<Vec<(NaiveDate, i64)>> {
    let mut select = Query::select();
    select
        .column(download_event::Column::Day)
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(download_event::Entity)
        .and_where(Expr::col(download_event::Column::Day).gte(since))
        .group_by_col(download_event::Column::Day);
    if let Some(model_id) = model_id {
        select.and_where(Expr::col(download_event::Column::ModelId).eq(model_id));
    }
    let rows = db.query_all(&select).await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<NaiveDate>("", "day")?, get_i64(row, "n")?)))
        .collect()
}

/// Per-day downloads of one model over the last `days` days (oldest first, zero-filled).
pub async fn model_downloads_per_day<C: ConnectionTrait>(
    db: &C,
    model_id: Uuid,
    days: i64,
) -> AppResult<Vec<DayCount>> {
    let today = super::now().date_naive();
    let counts = downloads_by_day(db, today - Duration::days(days - 1), Some(model_id)).await?;
    Ok(fill_days(today, days, &counts))
}

/// What a user listing may be narrowed to.
#[derive(Debug, Default)]
pub struct UserFilter {
    /// Part of the username or email.
    pub search: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// A page of users, newest first (administrators).
pub async fn users(
    state: &AppState,
    _admin: Admin<'_>,
    filter: &UserFilter,
    size: usize,
    after: Option<Cursor>,
) -> AppResult<Page<user::Model>> {
    let mut condition = Condition::all();
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let pattern = format!(
            "%{}%",
            search
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        condition = condition.add(
            Condition::any()
                .add(
                    Expr::col(user::Column::Username)
                        .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\')),
                )
                .add(
                    Expr::col(user::Column::Email)
                        .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
                ),
        );
    }
    if let Some(role) = filter.role {
        condition = condition.add(user::Column::Role.eq(role));
    }
    if let Some(disabled) = filter.disabled {
        condition = condition.add(user::Column::Disabled.eq(disabled));
    }
    newest_first(
        state,
        user::Entity::find().filter(condition),
        user::Column::Id,
        size,
        after,
        |u| u.id,
    )
    .await
}

/// Changes a user's role or enabled state, refusing to leave no enabled administrator. The
/// check and the change happen in one transaction with the administrators' rows locked, so
/// two administrators demoting each other at once cannot both succeed.
async fn change_user(
    state: &AppState,
    admin: Admin<'_>,
    user_id: Uuid,
    role: Option<Role>,
    disabled: Option<bool>,
) -> AppResult<user::Model> {
    let txn = super::begin_write(state).await?;
    let active_admins = user::Entity::find()
        .filter(user::Column::Role.eq(Role::Admin))
        .filter(user::Column::Disabled.eq(false));
    let active_admins = if txn.get_database_backend() == DatabaseBackend::Postgres {
        active_admins.lock_exclusive().all(&txn).await?
    } else {
        active_admins.all(&txn).await?
    };
    let target = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let new_role = role.unwrap_or(target.role);
    let new_disabled = disabled.unwrap_or(target.disabled);
    let stays_admin = new_role == Role::Admin && !new_disabled;
    let is_active_admin = active_admins.iter().any(|a| a.id == user_id);
    if is_active_admin && !stays_admin && active_admins.len() <= 1 {
        return Err(AppError::Conflict(
            "this is the last administrator; promote another user first".into(),
        ));
    }
    user::Entity::update_many()
        .col_expr(user::Column::Role, Expr::value(new_role))
        .col_expr(user::Column::Disabled, Expr::value(new_disabled))
        .col_expr(user::Column::UpdatedAt, Expr::value(super::now()))
        .filter(user::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let action = match (role, disabled) {
        (Some(_), _) => "user_role_changed",
        (None, Some(true)) => "user_disabled",
        _ => "user_enabled",
    };
    let details = serde_json::json!({
        "role": matches!(new_role, Role::Admin).then_some("ADMIN").unwrap_or("USER"),
        "disabled": new_disabled,
    });
    audit::record(
        &txn,
        Some(admin.id()),
        action,
        Subject::User(user_id),
        None,
        Some(details),
    )
    .await?;
    let updated = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    super::commit_account_change(state, txn).await?;
    tracing::info!(user_id = %user_id, actor_id = %admin.id(), action, "user changed");
    Ok(updated)
}

/// Sets a user's role (administrators).
pub async fn set_role(
    state: &AppState,
    admin: Admin<'_>,
    user_id: Uuid,
    role: Role,
) -> AppResult<user::Model> {
    change_user(state, admin, user_id, Some(role), None).await
}

/// Disables or enables a user (administrators). A disabled user's tokens stop working at once.
pub async fn set_disabled(
    state: &AppState,
    admin: Admin<'_>,
    user_id: Uuid,
    disabled: bool,
) -> AppResult<user::Model> {
    change_user(state, admin, user_id, None, Some(disabled)).await
}

/// What a user stores: models, versions and bytes, per user id, in one query.
pub async fn usage<C: ConnectionTrait>(
    db: &C,
    user_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64, i64, i64)>, sea_orm::DbErr> {
    let select = with_usage_columns(Query::select().expr_as(
        Expr::col((model::Entity, model::Column::OwnerId)),
        Alias::new("owner_id"),
    ))
    .from(model::Entity)
    .left_join(
        model_version::Entity,
        Expr::col((model_version::Entity, model_version::Column::ModelId))
            .equals((model::Entity, model::Column::Id)),
    )
    .and_where(Expr::col((model::Entity, model::Column::OwnerId)).is_in(user_ids.iter().copied()))
    .group_by_col((model::Entity, model::Column::OwnerId))
    .take();
    let rows = db.query_all(&select).await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<Uuid>("", "owner_id")?,
                row.try_get::<i64>("", "models")?,
                row.try_get::<i64>("", "versions")?,
                row.try_get::<i64>("", "bytes")?,
            ))
        })
        .collect()
}
