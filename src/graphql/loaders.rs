//! DataLoaders, built per request: every relation a list resolves is fetched with one
//! `IN (…)` query per level, whatever the page size.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::entities::{model, model_version, user};

/// A loader failure, shared by every waiting resolver.
pub type LoadError = Arc<DbErr>;

/// Users by id.
pub struct UserLoader(DatabaseConnection);
/// Models by id.
pub struct ModelLoader(DatabaseConnection);
/// Versions by id.
pub struct VersionLoader(DatabaseConnection);
/// All versions of a model, newest semver first, by model id.
pub struct VersionsOfModelLoader(DatabaseConnection);

impl Loader<Uuid> for UserLoader {
    type Value = user::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = user::Entity::find()
            .filter(user::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

impl Loader<Uuid> for ModelLoader {
    type Value = model::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = model::Entity::find()
            .filter(model::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

impl Loader<Uuid> for VersionLoader {
    type Value = model_version::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = model_version::Entity::find()
            .filter(model_version::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

impl Loader<Uuid> for VersionsOfModelLoader {
    type Value = Vec<model_version::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = model_version::Entity::find()
            .filter(model_version::Column::ModelId.is_in(keys.iter().copied()))
            .order_by_desc(model_version::Column::VersionKey)
            .all(&self.0)
            .await?;
        let mut grouped: HashMap<Uuid, Self::Value> =
            keys.iter().map(|key| (*key, Vec::new())).collect();
        for row in rows {
            grouped.entry(row.model_id).or_default().push(row);
        }
        Ok(grouped)
    }
}

/// Models, versions and bytes a user stores.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub models: i64,
    pub versions: i64,
    pub bytes: i64,
}

/// Storage usage by user id.
pub struct UsageLoader(DatabaseConnection);

impl Loader<Uuid> for UsageLoader {
    type Value = Usage;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = crate::services::admin::usage(&self.0, keys).await?;
        Ok(rows
            .into_iter()
            .map(|(id, models, versions, bytes)| {
                (
                    id,
                    Usage {
                        models,
                        versions,
                        bytes,
                    },
                )
            })
            .collect())
    }
}

/// The loaders of one request.
pub struct Loaders {
    pub users: DataLoader<UserLoader>,
    pub models: DataLoader<ModelLoader>,
    pub versions: DataLoader<VersionLoader>,
    pub versions_of_model: DataLoader<VersionsOfModelLoader>,
    pub usage: DataLoader<UsageLoader>,
}

impl Loaders {
    /// Fresh loaders (with empty caches) for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        Self {
            users: DataLoader::new(UserLoader(db.clone()), tokio::spawn),
            models: DataLoader::new(ModelLoader(db.clone()), tokio::spawn),
            versions: DataLoader::new(VersionLoader(db.clone()), tokio::spawn),
            versions_of_model: DataLoader::new(VersionsOfModelLoader(db.clone()), tokio::spawn),
            usage: DataLoader::new(UsageLoader(db.clone()), tokio::spawn),
        }
    }
}
