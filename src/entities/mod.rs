//! SeaORM entities: one module per table, mirroring `migrations/`. They carry no rules; the
//! services own those.

pub mod alias_move;
pub mod api_token;
pub mod audit_log;
pub mod blob_lock;
pub mod download_event;
pub mod draft_file;
pub mod enums;
pub mod event;
pub mod lease;
pub mod lfs_object;
pub mod model;
pub mod model_alias;
pub mod model_tag;
pub mod model_version;
pub mod resumable_upload;
pub mod user;
pub mod version_draft;
pub mod version_file;
pub mod webhook;
pub mod webhook_attempt;
pub mod webhook_delivery;
