//! `events`: the outbox of changes others may react to (see the migration).

use sea_orm::entity::prelude::*;

use super::enums::EventKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// Its place in the order events were written.
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub id: Uuid,
    pub kind: EventKind,
    pub model_id: Option<Uuid>,
    pub version_id: Option<Uuid>,
    /// The owner of the model, as it was (for who may see the event once the model is gone).
    pub owner_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    /// The body a webhook receives.
    pub payload: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
