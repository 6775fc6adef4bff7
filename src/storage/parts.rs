//! Objects sent in parts (the LFS multipart transfer): each part streams into the store on its
//! own, hashed as it arrives, and is kept as `lfs-parts/{key}/{number}-{sha256}` — its hash is
//! the `ETag` its sender collects, so a part sent again beside an earlier copy is told apart,
//! and any replica can complete the object. Completion reads the parts back in order.

use futures_util::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, path::Path};

use super::{BlobStore, ByteStream, StagedBlob, StorageError, Upload, map_err};

/// Where parts wait for their completion.
const PREFIX: &str = "lfs-parts";
/// The name of a part still arriving.
const INCOMING: &str = "incoming-";

/// A stored part of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    /// The SHA-256 of the part's bytes (its `ETag`).
    pub sha256: String,
    pub size: u64,
}

fn folder(key: &str) -> Path {
    Path::from(format!("{PREFIX}/{key}"))
}

fn part_path(key: &str, number: u32, sha256: &str) -> Path {
    folder(key).join(format!("{number:05}-{sha256}"))
}

impl BlobStore {
    /// Starts receiving a part of the object `key` (a `/`-separated name of the caller's).
    pub async fn begin_part(&self, key: &str) -> Result<Upload, StorageError> {
        let path = folder(key).join(format!("{INCOMING}{}", uuid::Uuid::now_v7()));
        self.upload_to(path).await
    }

    /// Keeps a received part as part `number` of `key`.
    pub async fn keep_part(
        &self,
        key: &str,
        number: u32,
        received: &StagedBlob,
    ) -> Result<Part, StorageError> {
        let target = part_path(key, number, &received.sha256);
        self.store
            .rename(&received.staging_path, &target)
            .await
            .map_err(map_err)?;
        Ok(Part {
            number,
            sha256: received.sha256.clone(),
            size: received.size,
        })
    }

    /// The parts of `key` kept so far, by number (a part sent twice appears twice).
    pub async fn parts(&self, key: &str) -> Result<Vec<Part>, StorageError> {
        let mut parts: Vec<Part> = self
            .store
            .list(Some(&folder(key)))
            .map_err(map_err)
            .try_filter_map(|meta| async move {
                let name = meta.location.filename().unwrap_or_default();
                let part = name.split_once('-').and_then(|(number, sha256)| {
                    let number = number.parse().ok()?;
                    let is_hash =
                        sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
                    is_hash.then(|| Part {
                        number,
                        sha256: sha256.to_owned(),
                        size: meta.size,
                    })
                });
                Ok(part)
            })
            .try_collect()
            .await?;
        parts.sort_by(|a, b| (a.number, &a.sha256).cmp(&(b.number, &b.sha256)));
        Ok(parts)
    }

    /// Streams a kept part.
    pub async fn read_part(&self, key: &str, part: &Part) -> Result<ByteStream, StorageError> {
        self.read_at(&part_path(key, part.number, &part.sha256), None)
            .await
    }

    /// Removes every part of `key` (best effort, logged).
    pub async fn remove_parts(&self, key: &str) {
        let listed: Result<Vec<_>, _> = self.store.list(Some(&folder(key))).try_collect().await;
        let outcome = match listed {
            Ok(listed) => {
                self.delete_all(listed.into_iter().map(|m| m.location).collect())
                    .await
            }
            Err(e) => Err(map_err(e)),
        };
        if let Err(e) = outcome {
            tracing::warn!(key, error = %e, "could not remove the parts of an object");
        }
        // On local disk the object's folder (and its model's, once empty) stays behind.
        if let Some(root) = &self.local_root {
            let folder = root.join(folder(key).as_ref());
            for dir in folder.ancestors().take(key.split('/').count()) {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
    }

    /// Removes parts (kept or still arriving) older than `grace`: objects whose sender gave up.
    /// Returns how many went.
    pub async fn sweep_parts(&self, grace: std::time::Duration) -> Result<usize, StorageError> {
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let stale: Vec<_> = self
            .store
            .list(Some(&Path::from(PREFIX)))
            .try_filter(|meta| futures_util::future::ready(meta.last_modified <= cutoff))
            .try_collect()
            .await
            .map_err(map_err)?;
        let count = stale.len();
        self.delete_all(stale.into_iter().map(|m| m.location).collect())
            .await?;
        Ok(count)
    }

    async fn delete_all(&self, locations: Vec<Path>) -> Result<(), StorageError> {
        let store = self.store.clone();
        let mut deletions = futures_util::stream::iter(locations)
            .map(move |location| {
                let store = store.clone();
                async move { store.delete(&location).await }
            })
            .buffer_unordered(8);
        while let Some(deleted) = deletions.next().await {
            match deleted {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(())
    }
}
