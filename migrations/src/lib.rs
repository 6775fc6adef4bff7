//! Schema migrations for Model Hub: append-only, reversible, and portable between SQLite and
//! PostgreSQL. Each file owns one step; `Migrator` lists them in order.

pub use sea_orm_migration::prelude::*;

mod m20261130_000001_initial_schema;
mod m20261130_000002_listing_indexes;
mod m20261130_000003_version_key_collation;
mod m20261130_000004_blob_locks;
mod m20261201_000005_inspection_gate;
mod m20261201_000006_download_viewers;
mod m20261201_000007_session_epochs;
mod m20261202_000008_owner_pages;
mod m20261202_000009_version_files;
mod m20261202_000010_version_drafts;
mod m20261202_000011_version_readme;
mod m20261202_000012_hub_names;
mod m20261202_000013_lfs_objects;
mod m20261202_000014_leases;
mod m20261202_000015_slug_case;
mod m20261202_000016_resumable_uploads;
mod m20261203_000017_resumable_hash_state;
mod m20261203_000018_model_aliases;
mod m20261203_000019_model_lineage;
mod m20261203_000020_webhooks;

/// Runs Model Hub's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_initial_schema::Migration),
            Box::new(m20261130_000002_listing_indexes::Migration),
            Box::new(m20261130_000003_version_key_collation::Migration),
            Box::new(m20261130_000004_blob_locks::Migration),
            Box::new(m20261201_000005_inspection_gate::Migration),
            Box::new(m20261201_000006_download_viewers::Migration),
            Box::new(m20261201_000007_session_epochs::Migration),
            Box::new(m20261202_000008_owner_pages::Migration),
            Box::new(m20261202_000009_version_files::Migration),
            Box::new(m20261202_000010_version_drafts::Migration),
            Box::new(m20261202_000011_version_readme::Migration),
            Box::new(m20261202_000012_hub_names::Migration),
            Box::new(m20261202_000013_lfs_objects::Migration),
            Box::new(m20261202_000014_leases::Migration),
            Box::new(m20261202_000015_slug_case::Migration),
            Box::new(m20261202_000016_resumable_uploads::Migration),
            Box::new(m20261203_000017_resumable_hash_state::Migration),
            Box::new(m20261203_000018_model_aliases::Migration),
            Box::new(m20261203_000019_model_lineage::Migration),
            Box::new(m20261203_000020_webhooks::Migration),
        ]
    }
}
