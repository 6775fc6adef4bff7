//! Keyset-friendly listing indexes: each sort column paired with the id tie-breaker, and a
//! covering index for the visibility check that every listing and count applies.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (name, columns) of the indexes this step creates.
const CREATED: &[(&str, &[&str])] = &[
    ("idx_models_downloads_id", &["downloads", "id"]),
    ("idx_models_updated_at_id", &["updated_at", "id"]),
    ("idx_models_name_id", &["name", "id"]),
    (
        "idx_models_access",
        &["visibility", "approval_status", "owner_id"],
    ),
];

/// (name, columns) of the single-column indexes they replace.
const REPLACED: &[(&str, &[&str])] = &[
    ("idx_models_downloads", &["downloads"]),
    ("idx_models_updated_at", &["updated_at"]),
    ("idx_models_name", &["name"]),
    ("idx_models_visibility", &["visibility", "approval_status"]),
];

fn create(name: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(Alias::new("models"));
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt.take()
}

fn drop(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Alias::new("models"))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, cols) in CREATED {
            manager.create_index(create(name, cols)).await?;
        }
        for (name, _) in REPLACED {
            manager.drop_index(drop(name)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, cols) in REPLACED {
            manager.create_index(create(name, cols)).await?;
        }
        for (name, _) in CREATED {
            manager.drop_index(drop(name)).await?;
        }
        Ok(())
    }
}
