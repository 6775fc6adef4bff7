//! `lfs_objects`: a file uploaded through the Hugging Face protocol's LFS transfer for a
//! model, stored and inspected, waiting for the commit that puts it in a version.

use sea_orm::entity::prelude::*;

use super::enums::{InspectionStatus, ModelFormat};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "lfs_objects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub model_id: Uuid,
    pub sha256: String,
    pub size_bytes: i64,
    /// The format its content shows (its path is known only at the commit).
    pub format: ModelFormat,
    pub inspection_status: InspectionStatus,
    pub inspection: Option<Json>,
    pub inspection_rules: Option<String>,
    pub uploaded_by: Uuid,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
