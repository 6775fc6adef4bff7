//! DataLoaders, built per request: every relation a list resolves is fetched with one
//! statement per level, whatever the page size. Loaders read rows as they are, except the
//! lists of a user's models and of a model's derivatives, which hold what the request's
//! viewer may see; whether the viewer
//! may see a row a loader returns is asked of the access policy by the resolver.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{
    auth::Viewer,
    entities::{alias_move, model, model_alias, model_version, user, version_file},
    services::{aliases, models, models::ModelLink, versions},
    state::AppState,
};

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
/// A model's aliases, by name, by model id.
pub struct AliasesOfModelLoader(DatabaseConnection);
/// The names of the aliases pointing to a version, by version id.
pub struct AliasesOfVersionLoader(DatabaseConnection);

impl Loader<Uuid> for AliasesOfModelLoader {
    type Value = Vec<model_alias::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        Ok(aliases::of_models(&self.0, keys).await?)
    }
}

impl Loader<Uuid> for AliasesOfVersionLoader {
    type Value = Vec<String>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        Ok(aliases::names_of_versions(&self.0, keys).await?)
    }
}

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
        Ok(versions::of_models(&self.0, keys).await?)
    }
}

/// One parent's page of rows, newest first: the parent (an account, or a model), how many
/// rows to read, and the id the page starts after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildPage {
    pub parent: Uuid,
    pub limit: u64,
    pub after: Option<Uuid>,
}

/// The pages `keys` ask for: one `fetch` (a statement) for all the parents asking the same
/// page (limit and start), its rows dealt out by the parent each hangs off.
async fn pages_of<T, F>(
    keys: &[ChildPage],
    fetch: impl Fn(Vec<Uuid>, u64, Option<Uuid>) -> F,
    parent_of: impl Fn(&T) -> Option<Uuid>,
) -> Result<HashMap<ChildPage, Vec<T>>, LoadError>
where
    F: std::future::Future<Output = Result<Vec<T>, DbErr>>,
{
    let mut asks: HashMap<(u64, Option<Uuid>), Vec<Uuid>> = HashMap::new();
    for key in keys {
        asks.entry((key.limit, key.after))
            .or_default()
            .push(key.parent);
    }
    let mut pages: HashMap<ChildPage, Vec<T>> = keys.iter().map(|key| (*key, Vec::new())).collect();
    for ((limit, after), parents) in asks {
        for row in fetch(parents, limit, after).await? {
            if let Some(parent) = parent_of(&row) {
                let key = ChildPage {
                    parent,
                    limit,
                    after,
                };
                pages.entry(key).or_default().push(row);
            }
        }
    }
    Ok(pages)
}

/// Counts by parent, zero for the parents asked about that have none.
fn totals(keys: &[Uuid], counts: Vec<(Uuid, i64)>) -> HashMap<Uuid, u64> {
    let mut totals: HashMap<Uuid, u64> = keys.iter().map(|key| (*key, 0)).collect();
    for (parent, count) in counts {
        totals.insert(parent, u64::try_from(count).unwrap_or_default());
    }
    totals
}

/// Pages of the models that hang off accounts (their models) or off models (their
/// derivatives) that the request's viewer may see: one statement for every parent asking the
/// same page (a nested `owner { models }` asks the same of each).
pub struct ModelsOfLoader {
    state: AppState,
    viewer: Viewer,
    link: ModelLink,
}

impl Loader<ChildPage> for ModelsOfLoader {
    type Value = Vec<model::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ChildPage],
    ) -> Result<HashMap<ChildPage, Self::Value>, Self::Error> {
        let fetch = |parents: Vec<Uuid>, limit, after| async move {
            models::newest_of(&self.state, &self.viewer, self.link, &parents, limit, after).await
        };
        pages_of(keys, fetch, |row| self.link.parent_of(row)).await
    }
}

/// How many models hang off each account or model that the request's viewer may see.
pub struct ModelCountLoader {
    state: AppState,
    viewer: Viewer,
    link: ModelLink,
}

impl Loader<Uuid> for ModelCountLoader {
    type Value = u64;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let counts = models::count_of(&self.state, &self.viewer, self.link, keys).await?;
        Ok(totals(keys, counts))
    }
}

/// Pages of models' alias histories: one statement for every model asking the same page.
pub struct AliasMovesLoader(AppState);

impl Loader<ChildPage> for AliasMovesLoader {
    type Value = Vec<alias_move::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ChildPage],
    ) -> Result<HashMap<ChildPage, Self::Value>, Self::Error> {
        let fetch = |parents: Vec<Uuid>, limit, after| async move {
            aliases::histories(&self.0, &parents, limit, after).await
        };
        pages_of(keys, fetch, |row: &alias_move::Model| Some(row.model_id)).await
    }
}

/// How many alias moves each model has.
pub struct AliasMoveCountLoader(AppState);

impl Loader<Uuid> for AliasMoveCountLoader {
    type Value = u64;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        Ok(totals(keys, aliases::history_lengths(&self.0, keys).await?))
    }
}

/// One version's page of files, by path: the version, how many rows to read, the path the
/// page starts after, and the prefix paths must start with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilePage {
    pub version: Uuid,
    pub limit: u64,
    pub after: Option<String>,
    pub prefix: Option<String>,
}

/// Pages of versions' files: one statement for every version asking the same page.
pub struct FilesOfVersionLoader(AppState);

impl Loader<FilePage> for FilesOfVersionLoader {
    type Value = Vec<version_file::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[FilePage]) -> Result<HashMap<FilePage, Self::Value>, Self::Error> {
        type Ask = (u64, Option<String>, Option<String>);
        let mut asks: HashMap<Ask, Vec<Uuid>> = HashMap::new();
        for key in keys {
            asks.entry((key.limit, key.after.clone(), key.prefix.clone()))
                .or_default()
                .push(key.version);
        }
        let mut pages: HashMap<FilePage, Self::Value> =
            keys.iter().map(|key| (key.clone(), Vec::new())).collect();
        for ((limit, after, prefix), versions_asked) in asks {
            let rows = versions::files_of_versions(
                &self.0,
                &versions_asked,
                limit,
                after.as_deref(),
                prefix.as_deref(),
            )
            .await?;
            for row in rows {
                let key = FilePage {
                    version: row.version_id,
                    limit,
                    after: after.clone(),
                    prefix: prefix.clone(),
                };
                pages.entry(key).or_default().push(row);
            }
        }
        Ok(pages)
    }
}

/// How many files of a version have paths starting with a prefix, by (version, prefix).
pub struct FileCountLoader(AppState);

impl Loader<(Uuid, String)> for FileCountLoader {
    type Value = u64;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[(Uuid, String)],
    ) -> Result<HashMap<(Uuid, String), Self::Value>, Self::Error> {
        let mut asks: HashMap<&str, Vec<Uuid>> = HashMap::new();
        for (version, prefix) in keys {
            asks.entry(prefix.as_str()).or_default().push(*version);
        }
        let mut counts: HashMap<(Uuid, String), u64> =
            keys.iter().map(|key| (key.clone(), 0)).collect();
        for (prefix, versions_asked) in asks {
            for (version, n) in versions::count_files(&self.0, &versions_asked, prefix).await? {
                counts.insert((version, prefix.to_owned()), u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(counts)
    }
}

/// Files by (version, path).
pub struct FileLoader(AppState);

impl Loader<(Uuid, String)> for FileLoader {
    type Value = version_file::Model;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[(Uuid, String)],
    ) -> Result<HashMap<(Uuid, String), Self::Value>, Self::Error> {
        let rows = versions::files_at(&self.0, keys).await?;
        Ok(rows
            .into_iter()
            .map(|row| ((row.version_id, row.path.clone()), row))
            .collect())
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
    pub models_of_owner: Cached<ModelsOfLoader>,
    pub model_counts: Cached<ModelCountLoader>,
    pub derivatives: Cached<ModelsOfLoader>,
    pub derivative_counts: Cached<ModelCountLoader>,
    pub alias_moves: Cached<AliasMovesLoader>,
    pub alias_move_counts: Cached<AliasMoveCountLoader>,
    pub files_of_version: Cached<FilesOfVersionLoader>,
    pub files: Cached<FileLoader>,
    pub file_counts: Cached<FileCountLoader>,
    pub aliases_of_model: Cached<AliasesOfModelLoader>,
    pub aliases_of_version: Cached<AliasesOfVersionLoader>,
}

/// Most keys one batch loads: lists of pages are one `UNION ALL` of a SELECT per key, and
/// SQLite allows at most 500 of them in one statement.
const MAX_BATCH: usize = 400;

/// A loader that fetches as soon as the resolvers polled with the first key have added theirs:
/// they all register in the same pass over sibling fields and list items, before the fetch
/// task runs, so batches stay whole without the default 1 ms wait on every level of a query.
fn cached<T>(loader: T) -> Cached<T> {
    DataLoader::with_cache(loader, tokio::spawn, HashMapCache::default())
        .max_batch_size(MAX_BATCH)
        .delay(std::time::Duration::ZERO)
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

    /// Fresh loaders (with empty caches) for one request by `viewer`.
    pub fn new(state: &AppState, viewer: &Viewer) -> Self {
        let db = &state.db;
        Self {
            models_of_owner: cached(ModelsOfLoader {
                state: state.clone(),
                viewer: viewer.clone(),
                link: ModelLink::Owner,
            }),
            model_counts: cached(ModelCountLoader {
                state: state.clone(),
                viewer: viewer.clone(),
                link: ModelLink::Owner,
            }),
            derivatives: cached(ModelsOfLoader {
                state: state.clone(),
                viewer: viewer.clone(),
                link: ModelLink::Base,
            }),
            derivative_counts: cached(ModelCountLoader {
                state: state.clone(),
                viewer: viewer.clone(),
                link: ModelLink::Base,
            }),
            alias_moves: cached(AliasMovesLoader(state.clone())),
            alias_move_counts: cached(AliasMoveCountLoader(state.clone())),
            files_of_version: cached(FilesOfVersionLoader(state.clone())),
            files: cached(FileLoader(state.clone())),
            file_counts: cached(FileCountLoader(state.clone())),
            users: cached(UserLoader(db.clone())),
            models: cached(ModelLoader(db.clone())),
            versions: cached(VersionLoader(db.clone())),
            versions_of_model: cached(VersionsOfModelLoader(db.clone())),
            usage: cached(UsageLoader(db.clone())),
            aliases_of_model: cached(AliasesOfModelLoader(db.clone())),
            aliases_of_version: cached(AliasesOfVersionLoader(db.clone())),
        }
    }
}
