//! Running the inspector ([`modelhub_inspect`]) on the server: on a bounded number of
//! dedicated threads (the rest wait their turn), each with a stack sized for the readers'
//! bounded depth, under a hard deadline; and inspecting stored versions again when the rules
//! change (`modelhub reinspect`, and at start-up when a version's report was made under other
//! rules).

use std::{sync::Arc, time::Duration};

use modelhub_inspect::{Declared, Limits, Report, Rules};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::Expr,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{audit, versions::refresh_current_version};
use crate::{
    config::Config,
    entities::{enums::InspectionStatus, model_version, version_file},
    error::{AppError, AppResult},
    state::AppState,
    storage::LocalCopy,
};

/// Stack of an inspection thread: the readers' own depth is bounded, this is headroom.
const STACK_BYTES: usize = 16 * 1024 * 1024;
/// How long past its own time budget an inspection may run before it is given up on.
const GRACE: Duration = Duration::from_secs(5);
/// Versions read per batch when inspecting again.
const BATCH: u64 = 64;

/// The server's inspector: its rules, limits and threads.
pub struct Inspector {
    threads: Arc<Semaphore>,
    limits: Limits,
    rules: Rules,
    /// `rules.fingerprint()`, computed once.
    fingerprint: String,
}

impl Inspector {
    /// An inspector configured by `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            threads: Arc::new(Semaphore::new(config.inspection_threads.max(1))),
            limits: Limits {
                time: config.inspection_timeout,
                memory: config.inspection_memory,
            },
            rules: config.pickle_rules.clone(),
            fingerprint: config.pickle_rules.fingerprint(),
        }
    }

    /// Identifies the rules reports are made under now.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Inspects a local copy of a file. Never fails: a reader that does not finish in time,
    /// or a thread that cannot start, gives an ERROR report (the file is held).
    pub async fn inspect(&self, copy: LocalCopy, size: u64, declared: Declared) -> Report {
        let failed = Report::failed;
        let Ok(permit) = self.threads.clone().acquire_owned().await else {
            return failed("the inspector is shutting down");
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (limits, rules) = (self.limits, self.rules.clone());
        let spawned = std::thread::Builder::new()
            .name("inspect".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let (mut file, temp) = copy;
                let report = modelhub_inspect::inspect(&mut file, size, declared, limits, &rules);
                drop(temp);
                drop(permit);
                let _ = tx.send(report);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start an inspection thread");
            return failed("the inspector could not start");
        }
        match tokio::time::timeout(self.limits.time + GRACE, rx).await {
            Ok(Ok(report)) => report,
            Ok(Err(_)) => failed("the inspector stopped without a report"),
            Err(_) => failed("the inspection ran out of time"),
        }
    }
}

/// What inspecting stored versions again changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReinspectReport {
    /// Versions inspected again.
    pub inspected: usize,
    /// Of those, versions whose verdict changed.
    pub changed: usize,
}

/// Inspects again every version whose report was made under other rules than the current
/// ones (all of them with `all`), each of its files, updating each verdict; a verdict that changes drops an
/// administrator's release of the old one, and the model's current version is chosen again.
pub async fn reinspect(state: &AppState, all: bool) -> AppResult<ReinspectReport> {
    let fingerprint = state.inspector.fingerprint().to_owned();
    let mut report = ReinspectReport::default();
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = model_version::Entity::find()
            .order_by_asc(model_version::Column::Id)
            .limit(BATCH);
        if !all {
            query = query.filter(
                Condition::any()
                    .add(model_version::Column::InspectionRules.is_null())
                    .add(model_version::Column::InspectionRules.ne(fingerprint.clone())),
            );
        }
        if let Some(after) = after {
            query = query.filter(model_version::Column::Id.gt(after));
        }
        let batch = query.all(&state.db).await?;
        let Some(last) = batch.last() else {
            return Ok(report);
        };
        after = Some(last.id);
        for version in batch {
            if reinspect_one(state, &version, &fingerprint).await? {
                report.changed += 1;
            }
            report.inspected += 1;
        }
    }
}

async fn reinspect_one(
    state: &AppState,
    version: &model_version::Model,
    fingerprint: &str,
) -> AppResult<bool> {
    let files = version_file::Entity::find()
        .filter(version_file::Column::VersionId.eq(version.id))
        .order_by_asc(version_file::Column::Path)
        .all(&state.db)
        .await?;
    let mut reports = Vec::with_capacity(files.len());
    for file in &files {
        let copy = state
            .blobs
            .blob_copy(&file.sha256)
            .await
            .map_err(AppError::internal)?;
        let size = u64::try_from(file.size_bytes).map_err(AppError::internal)?;
        let declared = super::version_upload::declared(file.format, &file.path);
        reports.push(state.inspector.inspect(copy, size, declared).await);
    }
    let found = match reports.as_slice() {
        [one] => one.clone(),
        many => Report::combine(files.iter().map(|f| f.path.as_str()).zip(many)),
    };
    let status: InspectionStatus = found.status().into();
    let changed = status != version.inspection_status;
    let txn = state.db.begin().await?;
    for (file, report) in files.iter().zip(&reports) {
        version_file::Entity::update_many()
            .col_expr(
                version_file::Column::InspectionStatus,
                Expr::value(InspectionStatus::from(report.status())),
            )
            .col_expr(
                version_file::Column::Inspection,
                Expr::value(Some(report.to_json())),
            )
            .col_expr(
                version_file::Column::InspectionRules,
                Expr::value(Some(fingerprint.to_owned())),
            )
            .filter(version_file::Column::Id.eq(file.id))
            .exec(&txn)
            .await?;
    }
    let mut update = model_version::Entity::update_many()
        .col_expr(model_version::Column::InspectionStatus, Expr::value(status))
        .col_expr(
            model_version::Column::Inspection,
            Expr::value(Some(found.to_json())),
        )
        .col_expr(
            model_version::Column::InspectionRules,
            Expr::value(Some(fingerprint.to_owned())),
        );
    if changed {
        update = update
            .col_expr(
                model_version::Column::ReleasedAt,
                Expr::value(None::<chrono::DateTime<chrono::Utc>>),
            )
            .col_expr(model_version::Column::ReleasedBy, Expr::value(None::<Uuid>))
            .col_expr(
                model_version::Column::ReleaseReason,
                Expr::value(None::<String>),
            );
    }
    update
        .filter(model_version::Column::Id.eq(version.id))
        .exec(&txn)
        .await?;
    if changed {
        let model = refresh_current_version(&txn, version.model_id).await?;
        let updated = model_version::Entity::find_by_id(version.id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("model version"))?;
        super::events::record(
            &txn,
            super::events::inspected(&model, &updated, Some(version.inspection_status)),
        )
        .await?;
        audit::record(
            &txn,
            None,
            "version_reinspected",
            audit::Subject::Version(version.id),
            None,
            Some(serde_json::json!({
                "from": format!("{:?}", version.inspection_status).to_uppercase(),
                "to": format!("{status:?}").to_uppercase(),
                "rules": fingerprint,
            })),
        )
        .await?;
        tracing::info!(version_id = %version.id, from = ?version.inspection_status, to = ?status, "verdict changed on re-inspection");
    }
    super::commit_change(state, txn).await?;
    Ok(changed)
}
