//! `resumable_uploads`: a tus upload, how far it has come and where its bytes are (see the
//! migration).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "resumable_uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    /// The size the upload announced.
    pub length: i64,
    /// The bytes received so far.
    pub offset: i64,
    /// The objects the bytes are in, in order: `[{"key": …, "size": …, "sha256": …}]`.
    pub segments: Json,
    /// The file name the client gave in `Upload-Metadata`.
    pub filename: Option<String>,
    /// The internal state of the file's SHA-256 after the bytes received so far, as
    /// `{offset}:{state}` (see `storage::PartialSha256`); `None` before the first byte and
    /// once finished.
    pub hash_state: Option<String>,
    /// The SHA-256 of the whole file, once every byte has arrived.
    pub sha256: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
