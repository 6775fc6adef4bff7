//! `version_files`: one file of a version, at a relative path, stored as a content-addressed
//! blob and inspected on its own.

use sea_orm::entity::prelude::*;

use super::enums::{InspectionStatus, ModelFormat};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "version_files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub version_id: Uuid,
    /// The relative path (see `domain::file_path`).
    pub path: String,
    /// The path in lower case: unique per version, so no two paths differ only in case.
    pub path_key: String,
    pub format: ModelFormat,
    pub size_bytes: i64,
    /// Hex SHA-256 of the file: also its blob's address.
    pub sha256: String,
    pub inspection_status: InspectionStatus,
    pub inspection: Option<Json>,
    /// The inspection rules the report was made under.
    pub inspection_rules: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
