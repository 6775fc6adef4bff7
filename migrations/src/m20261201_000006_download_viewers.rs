//! Honest download counts: each counted download names who made it (a user, or a client
//! address), and one (version, viewer, day) is counted once.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DownloadEvents {
    Table,
    ViewerKey,
    VersionId,
    Day,
}

const INDEX: &str = "idx_download_events_once_a_day";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(DownloadEvents::Table)
                    .add_column(string_len_null(DownloadEvents::ViewerKey, 80))
                    .to_owned(),
            )
            .await?;
        // Rows from before have no viewer: NULLs never clash.
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(DownloadEvents::Table)
                    .col(DownloadEvents::VersionId)
                    .col(DownloadEvents::ViewerKey)
                    .col(DownloadEvents::Day)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(DownloadEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DownloadEvents::Table)
                    .drop_column(DownloadEvents::ViewerKey)
                    .to_owned(),
            )
            .await
    }
}
