//! Parse-don't-validate newtypes for what users type: each `parse` returns a value that is
//! known to be valid, or a `BAD_USER_INPUT` error naming the field.

pub mod account;
pub mod alias;
pub mod file_path;
pub mod format;
pub mod hub_name;
pub mod lineage;
pub mod model;
pub mod version;
pub mod webhook_url;
