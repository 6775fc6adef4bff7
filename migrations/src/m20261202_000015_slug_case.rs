//! A repository name is unique per owner whatever its case, as the Hugging Face routes look it
//! up (`Owner/Model` and `owner/model` are one repository): the unique index on
//! `(owner_id, slug)` becomes one on `(owner_id, lower(slug))`, which those lookups use too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX uq_models_owner_slug")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_models_owner_slug_nocase ON models (owner_id, lower(slug))",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX uq_models_owner_slug_nocase")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_models_owner_slug ON models (owner_id, slug)",
        )
        .await?;
        Ok(())
    }
}
