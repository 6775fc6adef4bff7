//! The initial schema for the whole product: accounts, API tokens, models, versions, tags,
//! download events and the audit log, with an index for every list and filter the API offers.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    Email,
    PasswordHash,
    Role,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    Prefix,
    Scopes,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
    OwnerId,
    Name,
    Description,
    Framework,
    TaskType,
    Tags,
    License,
    Visibility,
    ApprovalStatus,
    ReviewNote,
    CurrentVersionId,
    Downloads,
    SubmittedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ModelTags {
    Table,
    ModelId,
    Tag,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Id,
    ModelId,
    Version,
    VersionKey,
    Format,
    SizeBytes,
    Sha256,
    Filename,
    Changelog,
    Metadata,
    PerformanceMetrics,
    Downloads,
    UploadedBy,
    InspectionStatus,
    Inspection,
    WithdrawnAt,
    WithdrawnReason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DownloadEvents {
    Table,
    Id,
    ModelId,
    VersionId,
    UserId,
    Day,
    Bytes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    ActorId,
    Action,
    SubjectType,
    SubjectId,
    Reason,
    Details,
    CreatedAt,
}

fn index<T: IntoIden + 'static>(
    table: T,
    name: &str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(string_len_uniq(Users::Username, 64))
                    .col(string_len_uniq(Users::Email, 254))
                    .col(string(Users::PasswordHash))
                    .col(string_len(Users::Role, 16))
                    .col(boolean(Users::Disabled).default(false))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(Users::Table, "idx_users_created_at", &["created_at"]))
            .await?;
        manager
            .create_index(index(Users::Table, "idx_users_role", &["role"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(pk_uuid(ApiTokens::Id))
                    .col(uuid(ApiTokens::UserId))
                    .col(string_len(ApiTokens::Name, 100))
                    .col(string_len_uniq(ApiTokens::TokenHash, 64))
                    .col(string_len(ApiTokens::Prefix, 16))
                    .col(string_len(ApiTokens::Scopes, 64))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_tokens_user")
                            .from(ApiTokens::Table, ApiTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(ApiTokens::Table, "idx_api_tokens_user", &["user_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Models::Table)
                    .col(pk_uuid(Models::Id))
                    .col(uuid(Models::OwnerId))
                    .col(string_len(Models::Name, 100))
                    .col(text_null(Models::Description))
                    .col(string_len(Models::Framework, 64))
                    .col(string_len_null(Models::TaskType, 64))
                    .col(json_binary(Models::Tags))
                    .col(string_len_null(Models::License, 64))
                    .col(string_len(Models::Visibility, 16))
                    .col(string_len(Models::ApprovalStatus, 16))
                    .col(text_null(Models::ReviewNote))
                    .col(uuid_null(Models::CurrentVersionId))
                    .col(big_integer(Models::Downloads).default(0))
                    .col(timestamp_with_time_zone_null(Models::SubmittedAt))
                    .col(timestamp_with_time_zone(Models::CreatedAt))
                    .col(timestamp_with_time_zone(Models::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_models_owner")
                            .from(Models::Table, Models::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index(Models::Table, "uq_models_owner_name", &["owner_id", "name"])
                    .unique()
                    .take(),
            )
            .await?;
        for (name, cols) in [
            (
                "idx_models_visibility",
                &["visibility", "approval_status"][..],
            ),
            (
                "idx_models_approval_submitted",
                &["approval_status", "submitted_at"][..],
            ),
            ("idx_models_framework", &["framework"][..]),
            ("idx_models_task_type", &["task_type"][..]),
            ("idx_models_license", &["license"][..]),
            ("idx_models_name", &["name"][..]),
            ("idx_models_downloads", &["downloads"][..]),
            ("idx_models_created_at", &["created_at"][..]),
            ("idx_models_updated_at", &["updated_at"][..]),
        ] {
            manager
                .create_index(index(Models::Table, name, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(ModelTags::Table)
                    .col(uuid(ModelTags::ModelId))
                    .col(string_len(ModelTags::Tag, 64))
                    .primary_key(Index::create().col(ModelTags::ModelId).col(ModelTags::Tag))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_model_tags_model")
                            .from(ModelTags::Table, ModelTags::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(ModelTags::Table, "idx_model_tags_tag", &["tag"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ModelVersions::Table)
                    .col(pk_uuid(ModelVersions::Id))
                    .col(uuid(ModelVersions::ModelId))
                    .col(string_len(ModelVersions::Version, 64))
                    .col(string_len(ModelVersions::VersionKey, 255))
                    .col(string_len(ModelVersions::Format, 16))
                    .col(big_integer(ModelVersions::SizeBytes))
                    .col(char_len(ModelVersions::Sha256, 64))
                    .col(string_len_null(ModelVersions::Filename, 255))
                    .col(text_null(ModelVersions::Changelog))
                    .col(json_binary(ModelVersions::Metadata))
                    .col(json_binary(ModelVersions::PerformanceMetrics))
                    .col(big_integer(ModelVersions::Downloads).default(0))
                    .col(uuid(ModelVersions::UploadedBy))
                    .col(string_len(ModelVersions::InspectionStatus, 16))
                    .col(json_binary_null(ModelVersions::Inspection))
                    .col(timestamp_with_time_zone_null(ModelVersions::WithdrawnAt))
                    .col(text_null(ModelVersions::WithdrawnReason))
                    .col(timestamp_with_time_zone(ModelVersions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_model_versions_model")
                            .from(ModelVersions::Table, ModelVersions::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index(
                    ModelVersions::Table,
                    "uq_model_versions_key",
                    &["model_id", "version_key"],
                )
                .unique()
                .take(),
            )
            .await?;
        for (name, cols) in [
            ("idx_model_versions_sha256", &["sha256"][..]),
            ("idx_model_versions_format", &["format"][..]),
            ("idx_model_versions_created_at", &["created_at"][..]),
            ("idx_model_versions_inspection", &["inspection_status"][..]),
        ] {
            manager
                .create_index(index(ModelVersions::Table, name, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(DownloadEvents::Table)
                    .col(pk_uuid(DownloadEvents::Id))
                    .col(uuid(DownloadEvents::ModelId))
                    .col(uuid(DownloadEvents::VersionId))
                    .col(uuid_null(DownloadEvents::UserId))
                    .col(date(DownloadEvents::Day))
                    .col(big_integer(DownloadEvents::Bytes))
                    .col(timestamp_with_time_zone(DownloadEvents::CreatedAt))
                    .take(),
            )
            .await?;
        for (name, cols) in [
            ("idx_download_events_model_day", &["model_id", "day"][..]),
            (
                "idx_download_events_version_day",
                &["version_id", "day"][..],
            ),
            ("idx_download_events_day", &["day"][..]),
        ] {
            manager
                .create_index(index(DownloadEvents::Table, name, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_uuid(AuditLog::Id))
                    .col(uuid_null(AuditLog::ActorId))
                    .col(string_len(AuditLog::Action, 64))
                    .col(string_len(AuditLog::SubjectType, 32))
                    .col(string_len(AuditLog::SubjectId, 64))
                    .col(text_null(AuditLog::Reason))
                    .col(json_binary_null(AuditLog::Details))
                    .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                    .take(),
            )
            .await?;
        for (name, cols) in [
            ("idx_audit_log_actor", &["actor_id", "created_at"][..]),
            ("idx_audit_log_action", &["action", "created_at"][..]),
            ("idx_audit_log_subject", &["subject_type", "subject_id"][..]),
            ("idx_audit_log_created_at", &["created_at"][..]),
        ] {
            manager
                .create_index(index(AuditLog::Table, name, cols))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            DownloadEvents::Table.into_iden(),
            ModelVersions::Table.into_iden(),
            ModelTags::Table.into_iden(),
            Models::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
