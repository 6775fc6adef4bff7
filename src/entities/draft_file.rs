//! `draft_files`: one file of a draft, stored and inspected as it arrived.

use sea_orm::entity::prelude::*;

use super::enums::{InspectionStatus, ModelFormat};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "draft_files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub draft_id: Uuid,
    pub path: String,
    pub path_key: String,
    pub format: ModelFormat,
    pub size_bytes: i64,
    pub sha256: String,
    pub inspection_status: InspectionStatus,
    pub inspection: Option<Json>,
    pub inspection_rules: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
