//! `models`: a named model owned by a user, with its publication state.

use sea_orm::entity::prelude::*;

use super::enums::{ApprovalStatus, Visibility};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    /// Its repository name (`owner/slug`) in the Hugging Face protocol; see `domain::hub_name`.
    pub slug: String,
    pub description: Option<String>,
    pub framework: String,
    pub task_type: Option<String>,
    /// The tags as a JSON array of strings (`model_tags` holds them for filtering).
    pub tags: Json,
    pub license: Option<String>,
    pub visibility: Visibility,
    pub approval_status: ApprovalStatus,
    /// The reviewer's note or rejection reason.
    pub review_note: Option<String>,
    pub current_version_id: Option<Uuid>,
    pub downloads: i64,
    /// When publication was last requested (the approval queue's order).
    pub submitted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
