//! `version_drafts`: a version being gathered over several requests, not yet visible.

use sea_orm::entity::prelude::*;

use super::enums::ModelFormat;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "version_drafts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub model_id: Uuid,
    pub created_by: Uuid,
    /// The version it will be, e.g. `v2.0.0`, and its sort key.
    pub version: String,
    pub version_key: String,
    /// The declared format, if any.
    pub format: Option<ModelFormat>,
    pub changelog: Option<String>,
    pub metadata: Json,
    pub performance_metrics: Json,
    pub created_at: DateTimeUtc,
    /// When it is given up (each addition of files moves this on).
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
