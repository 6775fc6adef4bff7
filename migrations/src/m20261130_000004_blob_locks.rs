//! `blob_locks`: a row per content address that an upload or a release is working on. Both
//! lock the row (by an upsert) in the transaction that checks the blob and records or deletes
//! it, so a blob is never deleted between a new version's check that it exists and that
//! version's commit.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BlobLocks {
    Table,
    Sha256,
    LockedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BlobLocks::Table)
                    .col(string_len(BlobLocks::Sha256, 64).primary_key())
                    .col(timestamp_with_time_zone(BlobLocks::LockedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BlobLocks::Table).to_owned())
            .await
    }
}
