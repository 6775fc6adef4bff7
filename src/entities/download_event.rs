//! `download_events`: one row per counted download, for analytics.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "download_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub model_id: Uuid,
    pub version_id: Uuid,
    pub user_id: Option<Uuid>,
    pub day: Date,
    pub bytes: i64,
    pub created_at: DateTimeUtc,
    /// Who downloaded: `user:<id>`, or `ip:<address>` (IPv6 by its /64) for anonymous callers.
    pub viewer_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
