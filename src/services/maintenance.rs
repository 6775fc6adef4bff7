//! Keeping the blob store and the database in agreement: `gc` removes blobs no version uses,
//! `verify` re-hashes every blob a version uses. Both run from the command line; `gc` also
//! runs in the background when the server starts and every hour.

use std::time::Duration;

use sea_orm::{EntityTrait, QuerySelect};

use crate::{
    entities::{draft_file, lfs_object, version_file},
    error::AppError,
    state::AppState,
};

/// What `gc` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs no version uses that were deleted.
    pub deleted: usize,
    /// Their bytes.
    pub freed_bytes: u64,
    /// Unused blobs left because they are younger than the grace period (uploads in flight).
    pub kept_recent: usize,
    /// Leftover staging files removed.
    pub staging_removed: usize,
    /// Version drafts past their expiry that were removed.
    pub drafts_expired: u64,
    /// LFS objects no commit took before their expiry, removed.
    pub lfs_objects_expired: u64,
    /// Parts of objects sent in parts whose sender gave up, removed.
    pub parts_removed: usize,
    /// Resumable uploads past their expiry (unfinished, or finished and never taken), removed.
    pub resumable_expired: u64,
    /// Change events past their retention, removed with their delivery log.
    pub events_purged: u64,
}

/// One problem `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// A version's blob is not in the store.
    Missing { sha256: String },
    /// The blob's size differs from the recorded one.
    WrongSize {
        sha256: String,
        expected: u64,
        found: u64,
    },
    /// The blob's bytes no longer hash to its name.
    Corrupt { sha256: String, actual: String },
}

/// The blobs versions, drafts and received LFS objects use, with their sizes.
async fn referenced(state: &AppState) -> Result<Vec<(String, i64)>, AppError> {
    let mut used: Vec<(String, i64)> = version_file::Entity::find()
        .select_only()
        .column(version_file::Column::Sha256)
        .column(version_file::Column::SizeBytes)
        .distinct()
        .into_tuple()
        .all(&state.db)
        .await?;
    used.extend(
        draft_file::Entity::find()
            .select_only()
            .column(draft_file::Column::Sha256)
            .column(draft_file::Column::SizeBytes)
            .distinct()
            .into_tuple::<(String, i64)>()
            .all(&state.db)
            .await?,
    );
    used.extend(
        lfs_object::Entity::find()
            .select_only()
            .column(lfs_object::Column::Sha256)
            .column(lfs_object::Column::SizeBytes)
            .distinct()
            .into_tuple::<(String, i64)>()
            .all(&state.db)
            .await?,
    );
    Ok(used)
}

/// Deletes blobs that no version references and that are older than `grace`, and what uploads
/// cut short left in the staging area (see [`crate::storage::BlobStore::sweep_staging`]).
pub async fn gc(state: &AppState, grace: Duration) -> Result<GcReport, AppError> {
    let mut report = GcReport {
        staging_removed: state
            .blobs
            .sweep_staging(grace)
            .await
            .map_err(AppError::internal)?,
        drafts_expired: super::drafts::expire(state).await?,
        lfs_objects_expired: super::lfs::expire(state).await?,
        resumable_expired: super::resumable::expire(state).await?,
        events_purged: super::events::purge(state).await?,
        parts_removed: state
            .blobs
            .sweep_parts(state.config.draft_ttl.max(grace))
            .await
            .map_err(AppError::internal)?,
        ..GcReport::default()
    };
    let used: std::collections::HashSet<String> = referenced(state)
        .await?
        .into_iter()
        .map(|(sha, _)| sha)
        .collect();
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(grace).map_err(AppError::internal)?;
    for blob in state.blobs.list_blobs().await.map_err(AppError::internal)? {
        if used.contains(&blob.sha256) {
            continue;
        }
        if blob.last_modified > cutoff {
            report.kept_recent += 1;
            continue;
        }
        // Checked again just before deleting: a version may have arrived meanwhile.
        super::blobs::release(state, &blob.sha256).await;
        report.deleted += 1;
        report.freed_bytes += blob.size;
    }
    tracing::info!(
        deleted = report.deleted,
        freed_bytes = report.freed_bytes,
        staging_removed = report.staging_removed,
        drafts_expired = report.drafts_expired,
        lfs_objects_expired = report.lfs_objects_expired,
        parts_removed = report.parts_removed,
        resumable_expired = report.resumable_expired,
        events_purged = report.events_purged,
        "blob garbage collection"
    );
    Ok(report)
}

/// Re-hashes every blob a version uses; returns what does not match the database.
pub async fn verify(state: &AppState) -> Result<(usize, Vec<Problem>), AppError> {
    let blobs = referenced(state).await?;
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (sha256, size) in &blobs {
        if !seen.insert(sha256.clone()) {
            continue;
        }
        match state.blobs.hash_blob(sha256).await {
            Ok(None) => problems.push(Problem::Missing {
                sha256: sha256.clone(),
            }),
            Ok(Some((actual, found))) => {
                if found != *size as u64 {
                    problems.push(Problem::WrongSize {
                        sha256: sha256.clone(),
                        expected: *size as u64,
                        found,
                    });
                } else if actual != *sha256 {
                    problems.push(Problem::Corrupt {
                        sha256: sha256.clone(),
                        actual,
                    });
                }
            }
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    Ok((seen.len(), problems))
}
