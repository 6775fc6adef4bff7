//! Aliases: named pointers of a model (`production`, `champion`, …) to one of its versions,
//! and the history of their moves. An alias goes with its model; a version an alias points to
//! is not deleted until the alias moves (the services refuse it; the key makes sure). History
//! rows name versions by id without a key, so they outlive the versions they name.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ModelAliases {
    Table,
    ModelId,
    Name,
    VersionId,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AliasMoves {
    Table,
    Id,
    ModelId,
    Alias,
    VersionId,
    PreviousVersionId,
    MovedBy,
    MovedAt,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Id,
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
                    .table(ModelAliases::Table)
                    .col(uuid(ModelAliases::ModelId))
                    .col(string_len(ModelAliases::Name, 64))
                    .col(uuid(ModelAliases::VersionId))
                    .col(uuid_null(ModelAliases::UpdatedBy))
                    .col(timestamp_with_time_zone(ModelAliases::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(ModelAliases::ModelId)
                            .col(ModelAliases::Name),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_model_aliases_model")
                            .from(ModelAliases::Table, ModelAliases::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_model_aliases_version")
                            .from(ModelAliases::Table, ModelAliases::VersionId)
                            .to(ModelVersions::Table, ModelVersions::Id)
                            .on_delete(ForeignKeyAction::NoAction),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_model_aliases_updated_by")
                            .from(ModelAliases::Table, ModelAliases::UpdatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_model_aliases_version")
                    .table(ModelAliases::Table)
                    .col(ModelAliases::VersionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AliasMoves::Table)
                    .col(pk_uuid(AliasMoves::Id))
                    .col(uuid(AliasMoves::ModelId))
                    .col(string_len(AliasMoves::Alias, 64))
                    .col(uuid_null(AliasMoves::VersionId))
                    .col(uuid_null(AliasMoves::PreviousVersionId))
                    .col(uuid_null(AliasMoves::MovedBy))
                    .col(timestamp_with_time_zone(AliasMoves::MovedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alias_moves_model")
                            .from(AliasMoves::Table, AliasMoves::ModelId)
                            .to(Models::Table, Models::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alias_moves_moved_by")
                            .from(AliasMoves::Table, AliasMoves::MovedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_alias_moves_model")
                    .table(AliasMoves::Table)
                    .col(AliasMoves::ModelId)
                    .col(AliasMoves::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AliasMoves::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ModelAliases::Table).to_owned())
            .await
    }
}
