//! Drafts of versions too big for one request: a draft gathers files over any number of
//! requests (on any replica) and becomes a version at once when committed; it expires
//! otherwise. Draft files keep their blobs like version files do.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VersionDrafts {
    Table,
    Id,
    ModelId,
    CreatedBy,
    Version,
    VersionKey,
    Format,
    Changelog,
    Metadata,
    PerformanceMetrics,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum DraftFiles {
    Table,
    Id,
    DraftId,
    Path,
    PathKey,
    Format,
    SizeBytes,
    Sha256,
    InspectionStatus,
    Inspection,
    InspectionRules,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VersionDrafts::Table)
                    .col(pk_uuid(VersionDrafts::Id))
                    .col(uuid(VersionDrafts::ModelId))
                    .col(uuid(VersionDrafts::CreatedBy))
                    .col(string_len(VersionDrafts::Version, 64))
                    .col(string_len(VersionDrafts::VersionKey, 255))
                    .col(string_len_null(VersionDrafts::Format, 16))
                    .col(text_null(VersionDrafts::Changelog))
                    .col(json_binary(VersionDrafts::Metadata))
                    .col(json_binary(VersionDrafts::PerformanceMetrics))
                    .col(timestamp_with_time_zone(VersionDrafts::CreatedAt))
                    .col(timestamp_with_time_zone(VersionDrafts::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_version_drafts_model")
                            .from(VersionDrafts::Table, VersionDrafts::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DraftFiles::Table)
                    .col(pk_uuid(DraftFiles::Id))
                    .col(uuid(DraftFiles::DraftId))
                    .col(string_len(DraftFiles::Path, 1024))
                    .col(string_len(DraftFiles::PathKey, 1024))
                    .col(string_len(DraftFiles::Format, 16))
                    .col(big_integer(DraftFiles::SizeBytes))
                    .col(char_len(DraftFiles::Sha256, 64))
                    .col(string_len(DraftFiles::InspectionStatus, 16))
                    .col(json_binary_null(DraftFiles::Inspection))
                    .col(string_len_null(DraftFiles::InspectionRules, 1024))
                    .col(timestamp_with_time_zone(DraftFiles::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_draft_files_draft")
                            .from(DraftFiles::Table, DraftFiles::DraftId)
                            .to(VersionDrafts::Table, VersionDrafts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE draft_files ALTER COLUMN path TYPE varchar(1024) COLLATE \"C\"",
                )
                .await?;
        }
        for (table, name, cols, unique) in [
            (
                "draft_files",
                "uq_draft_files_path_key",
                &["draft_id", "path_key"][..],
                true,
            ),
            (
                "draft_files",
                "idx_draft_files_path",
                &["draft_id", "path"][..],
                false,
            ),
            (
                "draft_files",
                "idx_draft_files_sha256",
                &["sha256"][..],
                false,
            ),
            (
                "version_drafts",
                "idx_version_drafts_expires",
                &["expires_at"][..],
                false,
            ),
            (
                "version_drafts",
                "idx_version_drafts_model",
                &["model_id"][..],
                false,
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Alias::new(table));
            for col in cols {
                index.col(Alias::new(*col));
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DraftFiles::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(VersionDrafts::Table).to_owned())
            .await
    }
}
