//! Lineage and the model card: a model may name the model it was made from (`base_model_id`,
//! a model of this hub — when that model is deleted, the link becomes its `owner/slug` in
//! `base_model_ref` — or `base_model_ref` alone for anything else, e.g.
//! `meta-llama/Llama-3.1-8B`), how (`base_relation`: `finetune`, `adapter`, `quantized`,
//! `merge`), the datasets it was trained on and a link to its training run.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Models {
    Table,
    BaseModelId,
    BaseModelRef,
    BaseRelation,
    Datasets,
    TrainingRun,
}

const COLUMNS: [Models; 5] = [
    Models::BaseModelId,
    Models::BaseModelRef,
    Models::BaseRelation,
    Models::Datasets,
    Models::TrainingRun,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        let columns = [
            uuid_null(Models::BaseModelId),
            string_len_null(Models::BaseModelRef, 255),
            string_len_null(Models::BaseRelation, 16),
            json_binary(Models::Datasets).default("[]").to_owned(),
            string_len_null(Models::TrainingRun, 1024),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Models::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_models_base_model")
                    .table(Models::Table)
                    .col(Models::BaseModelId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_models_base_model")
                    .table(Models::Table)
                    .to_owned(),
            )
            .await?;
        for column in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Models::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
