//! A resumable upload keeps the internal state of its file's SHA-256 after the bytes received
//! so far (`{offset}:{state}`, the offset it covers first), so that each byte is hashed once,
//! as it arrives, on whichever replica receives it.
//! `NULL` for an upload with no bytes yet, a finished one, or one begun before this column
//! (whose received bytes are then hashed again on its next request).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ResumableUploads {
    Table,
    HashState,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ResumableUploads::Table)
                    .add_column(text_null(ResumableUploads::HashState))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ResumableUploads::Table)
                    .drop_column(ResumableUploads::HashState)
                    .to_owned(),
            )
            .await
    }
}
