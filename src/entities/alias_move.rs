//! `alias_moves`: the history of a model's aliases, one row per move (see the migration).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alias_moves")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub model_id: Uuid,
    pub alias: String,
    /// The version it points to since; `None` when it was removed.
    pub version_id: Option<Uuid>,
    /// The version it pointed to before; `None` when it was new.
    pub previous_version_id: Option<Uuid>,
    pub moved_by: Option<Uuid>,
    pub moved_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
