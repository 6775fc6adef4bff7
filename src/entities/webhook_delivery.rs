//! `webhook_deliveries`: one event to send to one webhook, and how that went (see the
//! migration).

use sea_orm::entity::prelude::*;

use super::enums::DeliveryStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_seq: i64,
    pub status: DeliveryStatus,
    /// Tries made so far.
    pub attempts: i32,
    /// When the next try is due (while pending).
    pub next_attempt_at: DateTimeUtc,
    /// Until when a replica holds it to send it (another takes it over once that passes).
    pub lease_until: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
