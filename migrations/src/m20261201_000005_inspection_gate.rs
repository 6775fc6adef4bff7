//! The inspection gate: who released a held version and why, and under which inspection rules
//! each version's report was made (a report made under other rules is inspected again).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    ReleasedAt,
    ReleasedBy,
    ReleaseReason,
    InspectionRules,
}

fn columns() -> [ColumnDef; 4] {
    [
        timestamp_with_time_zone_null(ModelVersions::ReleasedAt),
        uuid_null(ModelVersions::ReleasedBy),
        text_null(ModelVersions::ReleaseReason),
        string_len_null(ModelVersions::InspectionRules, 1024),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for mut column in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(ModelVersions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ModelVersions::ReleasedAt,
            ModelVersions::ReleasedBy,
            ModelVersions::ReleaseReason,
            ModelVersions::InspectionRules,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ModelVersions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
