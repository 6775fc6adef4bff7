//! DataLoaders, built per request: every relation a list resolves is fetched with one
//! `IN (…)` query per level, whatever the page size.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
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

/// A per-request loader whose results are cached, so that primed values are reused.
pub type Cached<T> = DataLoader<T, HashMapCache>;

/// The loaders of one request.
pub struct Loaders {
    pub users: Cached<UserLoader>,
    pub models: Cached<ModelLoader>,
    pub versions: Cached<VersionLoader>,
    pub versions_of_model: Cached<VersionsOfModelLoader>,
    pub usage: Cached<UsageLoader>,
}

fn cached<T>(loader: T) -> Cached<T> {
    DataLoader::with_cache(loader, tokio::spawn, HashMapCache::default())
}

impl Loaders {
    /// Loads `keys` at once (no batching delay) and caches the values for later `load_one`s.
    pub async fn prime<T>(loader: &Cached<T>, keys: Vec<Uuid>) -> Result<(), LoadError>
    where
        T: Loader<Uuid, Error = LoadError>,
    {
        if keys.is_empty() {
            return Ok(());
        }
        let values = loader.loader().load(&keys).await?;
        loader.feed_many(values).await;
        Ok(())
    }

    /// Fresh loaders (with empty caches) for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        Self {
            users: cached(UserLoader(db.clone())),
            models: cached(ModelLoader(db.clone())),
            versions: cached(VersionLoader(db.clone())),
            versions_of_model: cached(VersionsOfModelLoader(db.clone())),
            usage: cached(UsageLoader(db.clone())),
        }
    }
}
