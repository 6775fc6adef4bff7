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
    /// The model of this hub it was made from (see the lineage migration).
    pub base_model_id: Option<Uuid>,
    /// What it was made from outside this hub (or a deleted base's `owner/name`).
    pub base_model_ref: Option<String>,
    /// How it was made from its base: `finetune`, `adapter`, `quantized` or `merge`.
    pub base_relation: Option<String>,
    /// The datasets it was trained on, as a JSON array of names or links.
    pub datasets: Json,
    /// A link to its training run.
    pub training_run: Option<String>,
    pub downloads: i64,
    /// When publication was last requested (the approval queue's order).
    pub submitted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
