//! A version is a set of files: each at a relative path, with its size, SHA-256 (its blob's
//! address), format and inspection. A version keeps its digest (the SHA-256 of its manifest,
//! see `domain::file_path`) and how many files it has. Every existing version becomes a
//! one-file version with the same bytes and hashes: its file is named after the uploaded file
//! (made a valid path), or `model.<extension of its format>`.

use sea_orm_migration::{
    prelude::*,
    schema::*,
    sea_orm::{ConnectionTrait, DatabaseBackend, Statement, prelude::Uuid},
};
use sha2::{Digest, Sha256};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VersionFiles {
    Table,
    Id,
    VersionId,
    Path,
    PathKey,
    Format,
    SizeBytes,
    Sha256,
    InspectionStatus,
    Inspection,
    InspectionRules,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ModelVersions {
    Table,
    Id,
    Digest,
    FileCount,
}

/// The usual extension of a stored format name.
fn extension(format: &str) -> &'static str {
    match format {
        "joblib" => "joblib",
        "pickle" => "pkl",
        "h5" => "h5",
        "keras" => "keras",
        "pth" => "pth",
        "safetensors" => "safetensors",
        "onnx" => "onnx",
        "gguf" => "gguf",
        _ => "bin",
    }
}

/// A valid one-segment path for an uploaded file name (as the server stored it then: its last
/// segment, at most 255 characters), else the format's default name.
fn path_for(filename: Option<&str>, format: &str) -> String {
    let name: String = filename
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_control() || c == '\\' || c == '/' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut end = name.len().min(255);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = name[..end].trim();
    if name.is_empty() || name == "." || name == ".." {
        format!("model.{}", extension(format))
    } else {
        name.to_owned()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VersionFiles::Table)
                    .col(pk_uuid(VersionFiles::Id))
                    .col(uuid(VersionFiles::VersionId))
                    .col(string_len(VersionFiles::Path, 1024))
                    .col(string_len(VersionFiles::PathKey, 1024))
                    .col(string_len(VersionFiles::Format, 16))
                    .col(big_integer(VersionFiles::SizeBytes))
                    .col(char_len(VersionFiles::Sha256, 64))
                    .col(string_len(VersionFiles::InspectionStatus, 16))
                    .col(json_binary_null(VersionFiles::Inspection))
                    .col(string_len_null(VersionFiles::InspectionRules, 1024))
                    .col(timestamp_with_time_zone(VersionFiles::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_version_files_version")
                            .from(VersionFiles::Table, VersionFiles::VersionId)
                            .to(ModelVersions::Table, ModelVersions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Paths sort byte by byte, as the digest's manifest does (SQLite already compares
        // bytes; PostgreSQL must not apply a locale's collation).
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE version_files ALTER COLUMN path TYPE varchar(1024) COLLATE \"C\"",
                )
                .await?;
        }
        for (name, cols, unique) in [
            (
                "uq_version_files_path_key",
                &["version_id", "path_key"][..],
                true,
            ),
            ("idx_version_files_path", &["version_id", "path"][..], false),
            ("idx_version_files_sha256", &["sha256"][..], false),
        ] {
            let mut index = Index::create();
            index.name(name).table(VersionFiles::Table);
            for col in cols {
                index.col(Alias::new(*col));
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        for mut column in [
            char_len(ModelVersions::Digest, 64).default("").to_owned(),
            integer(ModelVersions::FileCount).default(1).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ModelVersions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }

        // Each version's one file: the same blob, format and inspection, under the version's
        // own id (one file per version, so ids stay unique).
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO version_files (id, version_id, path, path_key, format, size_bytes, sha256, \
             inspection_status, inspection, inspection_rules, created_at) \
             SELECT id, id, '', '', format, size_bytes, sha256, inspection_status, inspection, \
             inspection_rules, created_at FROM model_versions",
        )
        .await?;
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, sha256, size_bytes, filename, format FROM model_versions",
            ))
            .await?;
        let param = |n: usize| match backend {
            DatabaseBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        };
        for row in rows {
            let id: Uuid = row.try_get("", "id")?;
            let sha256: String = row.try_get("", "sha256")?;
            let size: i64 = row.try_get("", "size_bytes")?;
            let filename: Option<String> = row.try_get("", "filename")?;
            let format: String = row.try_get("", "format")?;
            let path = path_for(filename.as_deref(), &format);
            let manifest = format!("{} {} {}\n", sha256.trim(), size, path);
            let digest = hex(&Sha256::digest(manifest.as_bytes()));
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE version_files SET path = {}, path_key = {} WHERE id = {}",
                    param(1),
                    param(2),
                    param(3)
                ),
                [path.clone().into(), path.to_lowercase().into(), id.into()],
            ))
            .await?;
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE model_versions SET digest = {} WHERE id = {}",
                    param(1),
                    param(2)
                ),
                [digest.into(), id.into()],
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VersionFiles::Table).to_owned())
            .await?;
        for column in [ModelVersions::Digest, ModelVersions::FileCount] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ModelVersions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
