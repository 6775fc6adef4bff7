//! A version's model card: the text of its root `README.md` (its front matter is also kept,
//! parsed, in the version's metadata).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Readme,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ModelVersions::Table)
                    .add_column(text_null(ModelVersions::Readme))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ModelVersions::Table)
                    .drop_column(ModelVersions::Readme)
                    .to_owned(),
            )
            .await
    }
}
