//! `webhooks`: an owner's subscription to a model's events, or an administrator's to every
//! model's (see the migration).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Who made it.
    pub owner_id: Uuid,
    /// The model whose events it receives; `None`: every model's (administrators').
    pub model_id: Option<Uuid>,
    pub url: String,
    /// The key deliveries are signed with (shown to its owner once).
    pub secret: String,
    /// The event types it wants (a JSON array of their names; empty: all).
    pub events: Json,
    pub description: Option<String>,
    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When its model was deleted: it receives nothing more.
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The account that made it.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::OwnerId",
        to = "super::user::Column::Id"
    )]
    Maker,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Maker.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
