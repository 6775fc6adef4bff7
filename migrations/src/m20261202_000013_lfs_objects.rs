//! Objects uploaded through the Hugging Face protocol's Git LFS transfer, ahead of the commit
//! that puts them in a version: each is stored (and inspected) as it arrives, keeps its blob
//! like a version file does, and expires unless a commit uses it first.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LfsObjects {
    Table,
    Id,
    ModelId,
    Sha256,
    SizeBytes,
    Format,
    InspectionStatus,
    Inspection,
    InspectionRules,
    UploadedBy,
    CreatedAt,
    ExpiresAt,
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
                    .table(LfsObjects::Table)
                    .col(pk_uuid(LfsObjects::Id))
                    .col(uuid(LfsObjects::ModelId))
                    .col(char_len(LfsObjects::Sha256, 64))
                    .col(big_integer(LfsObjects::SizeBytes))
                    .col(string_len(LfsObjects::Format, 16))
                    .col(string_len(LfsObjects::InspectionStatus, 16))
                    .col(json_binary_null(LfsObjects::Inspection))
                    .col(string_len_null(LfsObjects::InspectionRules, 1024))
                    .col(uuid(LfsObjects::UploadedBy))
                    .col(timestamp_with_time_zone(LfsObjects::CreatedAt))
                    .col(timestamp_with_time_zone(LfsObjects::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_lfs_objects_model")
                            .from(LfsObjects::Table, LfsObjects::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols, unique) in [
            (
                "uq_lfs_objects_model_sha256",
                &["model_id", "sha256"][..],
                true,
            ),
            ("idx_lfs_objects_sha256", &["sha256"][..], false),
            ("idx_lfs_objects_expires", &["expires_at"][..], false),
        ] {
            let mut index = Index::create();
            index.name(name).table(LfsObjects::Table);
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
            .drop_table(Table::drop().table(LfsObjects::Table).to_owned())
            .await
    }
}
