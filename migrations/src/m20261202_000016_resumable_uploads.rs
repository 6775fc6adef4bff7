//! Resumable uploads (the tus protocol): one row per upload, with how far it has come and the
//! segments its bytes are in, so that any replica can continue it after a cut connection or a
//! restart. A finished upload keeps its SHA-256 until a version or draft takes it, or it
//! expires.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ResumableUploads {
    Table,
    Id,
    OwnerId,
    Length,
    Offset,
    Segments,
    Filename,
    Sha256,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ResumableUploads::Table)
                    .col(pk_uuid(ResumableUploads::Id))
                    .col(uuid(ResumableUploads::OwnerId))
                    .col(big_integer(ResumableUploads::Length))
                    .col(big_integer(ResumableUploads::Offset))
                    .col(json_binary(ResumableUploads::Segments))
                    .col(string_len_null(ResumableUploads::Filename, 255))
                    .col(char_len_null(ResumableUploads::Sha256, 64))
                    .col(timestamp_with_time_zone(ResumableUploads::CreatedAt))
                    .col(timestamp_with_time_zone(ResumableUploads::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_resumable_uploads_owner")
                            .from(ResumableUploads::Table, ResumableUploads::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_resumable_uploads_expires")
                    .table(ResumableUploads::Table)
                    .col(ResumableUploads::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ResumableUploads::Table).to_owned())
            .await
    }
}
