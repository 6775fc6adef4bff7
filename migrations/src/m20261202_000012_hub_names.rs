//! Names for the Hugging Face protocol: each model gets a slug, a repository name unique per
//! owner (`owner/slug`), and each version a commit id, 40 hex characters derived from its id
//! and digest. Existing rows get theirs here, with the rules `domain::hub_name` and
//! `domain::hub_name::commit_id` had when this migration was written (kept here, so that later
//! changes to those rules do not change history).

use std::collections::{HashMap, HashSet};

use sea_orm_migration::{
    prelude::*,
    schema::*,
    sea_orm::{ConnectionTrait, DatabaseBackend, Statement, prelude::Uuid},
};
use sha2::{Digest, Sha256};

use crate::m20261202_000009_version_files::hex;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Models {
    Table,
    OwnerId,
    Slug,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    CommitId,
}

/// A repository name for a model name: ASCII letters, digits, `_`, `.` and `-`, at most 96,
/// starting and ending with a letter, digit or `_`, without `--`, `..` or a `.git` ending.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            c
        } else {
            '-'
        };
        if (c == '-' || c == '.') && out.ends_with(['-', '.']) {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_matches(['-', '.']).to_owned();
    out.truncate(MAX_SLUG);
    let mut out = out.trim_end_matches(['-', '.']).to_owned();
    if out.ends_with(".git") {
        out.replace_range(out.len() - 4.., "-git");
    }
    if out.is_empty() {
        out.push_str("model");
    }
    out
}

const MAX_SLUG: usize = 96;

/// The `n`th candidate for a slug already taken: `base-2`, `base-3`…, within the length.
fn numbered(base: &str, n: usize) -> String {
    let suffix = format!("-{n}");
    let mut head = base.to_owned();
    head.truncate(MAX_SLUG - suffix.len());
    format!("{}{suffix}", head.trim_end_matches(['-', '.']))
}

fn commit_id(version_id: Uuid, digest: &str) -> String {
    let seed = format!("modelhub commit\n{version_id}\n{digest}\n");
    hex(&Sha256::digest(seed.as_bytes()))[..40].to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Models::Table)
                    .add_column(string_len(Models::Slug, MAX_SLUG as u32).default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ModelVersions::Table)
                    .add_column(string_len(ModelVersions::CommitId, 40).default(""))
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let param = |n: usize| match backend {
            DatabaseBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        };
        let models = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, owner_id, name FROM models ORDER BY created_at, id",
            ))
            .await?;
        let mut taken: HashMap<Uuid, HashSet<String>> = HashMap::new();
        for row in models {
            let id: Uuid = row.try_get("", "id")?;
            let owner: Uuid = row.try_get("", "owner_id")?;
            let name: String = row.try_get("", "name")?;
            let owned = taken.entry(owner).or_default();
            let base = slug(&name);
            let mut chosen = base.clone();
            let mut n = 2;
            while owned.contains(&chosen.to_ascii_lowercase()) {
                chosen = numbered(&base, n);
                n += 1;
            }
            owned.insert(chosen.to_ascii_lowercase());
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE models SET slug = {} WHERE id = {}",
                    param(1),
                    param(2)
                ),
                [chosen.into(), id.into()],
            ))
            .await?;
        }
        let versions = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, digest FROM model_versions",
            ))
            .await?;
        for row in versions {
            let id: Uuid = row.try_get("", "id")?;
            let digest: String = row.try_get("", "digest")?;
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE model_versions SET commit_id = {} WHERE id = {}",
                    param(1),
                    param(2)
                ),
                [commit_id(id, &digest).into(), id.into()],
            ))
            .await?;
        }

        manager
            .create_index(
                Index::create()
                    .name("uq_models_owner_slug")
                    .table(Models::Table)
                    .col(Models::OwnerId)
                    .col(Models::Slug)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_model_versions_commit_id")
                    .table(ModelVersions::Table)
                    .col(ModelVersions::CommitId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("uq_models_owner_slug", Models::Table.into_iden()),
            (
                "uq_model_versions_commit_id",
                ModelVersions::Table.into_iden(),
            ),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Models::Table)
                    .drop_column(Models::Slug)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ModelVersions::Table)
                    .drop_column(ModelVersions::CommitId)
                    .to_owned(),
            )
            .await
    }
}
