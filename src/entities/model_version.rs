//! `model_versions`: one version of a model, identified by its semantic version: a set of
//! files (`version_files`). The file columns here describe a one-file version's file; for a
//! version of several files, `format` is its main file's, `size_bytes` the sum, `sha256` the
//! digest and the inspection the worst of its files'.

use sea_orm::entity::prelude::*;

use super::enums::{InspectionStatus, ModelFormat};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "model_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub model_id: Uuid,
    /// The version as the user wrote it, e.g. `v1.0.0`.
    pub version: String,
    /// A string whose byte order is semver precedence (see `domain::version`).
    pub version_key: String,
    pub format: ModelFormat,
    pub size_bytes: i64,
    /// Hex SHA-256 of a one-file version's file (also its blob's address); the digest for a
    /// version of several files.
    pub sha256: String,
    pub filename: Option<String>,
    pub changelog: Option<String>,
    pub metadata: Json,
    pub performance_metrics: Json,
    pub downloads: i64,
    pub uploaded_by: Uuid,
    pub inspection_status: InspectionStatus,
    pub inspection: Option<Json>,
    pub withdrawn_at: Option<DateTimeUtc>,
    pub withdrawn_reason: Option<String>,
    pub created_at: DateTimeUtc,
    /// When an administrator released a held (UNKNOWN or ERROR) version, by whom and why.
    pub released_at: Option<DateTimeUtc>,
    pub released_by: Option<Uuid>,
    pub release_reason: Option<String>,
    /// The inspection rules the report was made under (`modelhub_inspect::Rules::fingerprint`).
    pub inspection_rules: Option<String>,
    /// The SHA-256 of the version's manifest (see `domain::file_path`).
    pub digest: String,
    /// How many files the version has.
    pub file_count: i32,
    /// The model card: the text of the root `README.md`, if there is one.
    pub readme: Option<String>,
    /// Its commit id in the Hugging Face protocol; see `domain::hub_name::commit_id`.
    pub commit_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
