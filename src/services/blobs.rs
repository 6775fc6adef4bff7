//! Keeping model files and the versions that use them (through their `version_files`) in step. Recording a version that uses a
//! blob and deleting a blob no version uses both happen under the blob's row lock (an upsert
//! into `blob_locks`, held until the transaction ends), so a blob is never deleted between a new
//! version's check that it exists and that version's commit.

use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait, sea_query::OnConflict,
};

use crate::{
    entities::{blob_lock, draft_file, lfs_object, version_file},
    error::{AppError, AppResult},
    state::AppState,
    storage::StagedBlob,
};

/// Locks the blob's row until `txn` ends (creating the row if needed).
pub(super) async fn lock(txn: &DatabaseTransaction, sha256: &str) -> AppResult<()> {
    blob_lock::Entity::insert(blob_lock::ActiveModel {
        sha256: Set(sha256.to_owned()),
        locked_at: Set(super::now()),
    })
    .on_conflict(
        OnConflict::column(blob_lock::Column::Sha256)
            .update_column(blob_lock::Column::LockedAt)
            .to_owned(),
    )
    .exec(txn)
    .await?;
    Ok(())
}

/// Opens a transaction in which every `staged` blob is at its content address and stays there
/// until the transaction ends: record the versions that use them in it, then commit. Locks
/// are taken in hash order, so two uploads sharing files cannot wait for each other.
pub async fn begin_with<'a>(
    state: &AppState,
    staged: impl IntoIterator<Item = &'a StagedBlob>,
) -> AppResult<DatabaseTransaction> {
    let mut blobs: Vec<&StagedBlob> = staged.into_iter().collect();
    blobs.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    blobs.dedup_by(|a, b| a.sha256 == b.sha256);
    let txn = state.db.begin().await?;
    for blob in blobs {
        lock(&txn, &blob.sha256).await?;
        state
            .blobs
            .ensure_stored(blob)
            .await
            .map_err(AppError::internal)?;
    }
    Ok(txn)
}

/// Deletes the blob with this hash if no version, draft or received LFS object uses it (best
/// effort, logged).
pub async fn release(state: &AppState, sha256: &str) {
    let outcome: AppResult<()> = async {
        let txn = state.db.begin().await?;
        lock(&txn, sha256).await?;
        let users = version_file::Entity::find()
            .filter(version_file::Column::Sha256.eq(sha256))
            .count(&txn)
            .await?
            + draft_file::Entity::find()
                .filter(draft_file::Column::Sha256.eq(sha256))
                .count(&txn)
                .await?
            + lfs_object::Entity::find()
                .filter(lfs_object::Column::Sha256.eq(sha256))
                .count(&txn)
                .await?;
        if users == 0 {
            state
                .blobs
                .delete_blob(sha256)
                .await
                .map_err(AppError::internal)?;
            blob_lock::Entity::delete_by_id(sha256.to_owned())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        tracing::warn!(sha256, error = %e.cause().unwrap_or_else(|| e.message()), "could not release a blob; `modelhub gc` will");
    }
}
