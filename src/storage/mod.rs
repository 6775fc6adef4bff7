//! The blob store: model files addressed by their SHA-256, behind `object_store` (local disk
//! or any S3-compatible service). Uploads stream into `staging/` while they are hashed, then
//! move to `blobs/sha256/…` once complete and durable; nothing half-written is ever addressed.

mod parts;
mod s3;
mod staging;
pub mod tar;
mod upload;

use std::{ops::Range, path::PathBuf, sync::Arc};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, WriteMultipart,
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path, prefix::PrefixStore,
};
use std::io::{Read, Seek, SeekFrom};

pub use parts::Part;
pub use upload::{HEAD_BYTES, PartialSha256, StagedBlob, StagedSegment, Upload};

use crate::config::{S3Options, StorageUrl};

/// Read buffer for local files: 1 MiB reads serve at disk/loopback speed, 8 KiB ones do not.
const READ_CHUNK: usize = 1024 * 1024;

/// A blob store failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("blob not found: {0}")]
    NotFound(String),
    /// Anything else from the backend.
    #[error(transparent)]
    Backend(#[from] object_store::Error),
    /// A local I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The thread hashing an upload stopped before its end.
    #[error("the thread hashing the upload stopped")]
    HashingStopped(#[source] tokio::task::JoinError),
    /// The request to copy a part of a large object did not reach S3 or its answer was lost.
    #[error("S3 part copy request failed")]
    PartCopyRequest(#[source] reqwest::Error),
    /// S3 answered a part copy without copying it.
    #[error("S3 did not copy a part: {0}")]
    PartCopy(String),
}

fn map_err(err: object_store::Error) -> StorageError {
    match err {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound(path),
        other => StorageError::Backend(other),
    }
}

/// A stored blob.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub sha256: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// A readable local file, and the temporary file to remove when done (for remote stores).
pub type LocalCopy = (std::fs::File, Option<tempfile::TempPath>);

/// A stream of a blob's bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// Streams `range` of a local file: one blocking thread reads 1 MiB chunks straight into the
/// buffers it sends (object_store reads 8 KiB at a time, and tokio's file adds a copy), and
/// stops when the receiver goes away.
fn read_local(file: std::fs::File, range: Range<u64>) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StorageError>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
            let _ = tx.blocking_send(Err(e.into()));
            return;
        }
        let mut remaining = range.end - range.start;
        while remaining > 0 {
            let want = remaining.min(READ_CHUNK as u64);
            let mut chunk = Vec::with_capacity(want as usize);
            let result = match (&mut file).take(want).read_to_end(&mut chunk) {
                Ok(0) => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => {
                    remaining -= n as u64;
                    Ok(Bytes::from(chunk))
                }
                Err(e) => Err(e.into()),
            };
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// Largest read served without the blocking pool.
const SMALL_READ: u64 = 64 * 1024;

/// The bytes of a small local file (`range` of it), or `None` when it is larger than
/// [`SMALL_READ`] (and read by the streaming path).
fn read_small(
    path: &std::path::Path,
    range: Option<Range<u64>>,
) -> Result<Option<Bytes>, StorageError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::NotFound(path.display().to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len();
    let range = range.unwrap_or(0..size);
    if range.end > size || range.start > range.end {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    if range.end - range.start > SMALL_READ {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(range.start))?;
    let mut bytes = Vec::with_capacity((range.end - range.start) as usize);
    file.take(range.end - range.start).read_to_end(&mut bytes)?;
    Ok(Some(Bytes::from(bytes)))
}

/// The store of model files.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store; `None` for S3.
    local_root: Option<PathBuf>,
    /// The bucket of an S3 store, for large copies and presigned downloads.
    s3: Option<s3::S3>,
    /// This process's staging directory, claimed at its first upload.
    lease: Arc<tokio::sync::OnceCell<staging::Lease>>,
}

impl BlobStore {
    /// Opens the configured store; a local directory is created if missing.
    pub fn open(url: &StorageUrl, options: &S3Options) -> Result<Self, StorageError> {
        let (store, local_root, s3): (Arc<dyn ObjectStore>, _, _) = match url {
            StorageUrl::Local(dir) => {
                std::fs::create_dir_all(dir)?;
                let store = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
                (Arc::new(store), Some(dir.clone()), None)
            }
            StorageUrl::S3 { bucket, prefix } => {
                let client = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()?;
                let s3 = s3::S3::new(client.clone(), bucket, prefix, options);
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(client)
                } else {
                    Arc::new(PrefixStore::new(client, prefix.as_str()))
                };
                (store, None, Some(s3))
            }
        };
        Ok(Self {
            store,
            local_root,
            s3,
            lease: Arc::default(),
        })
    }

    /// Where the blob with this SHA-256 (lower-case hex) lives.
    pub fn blob_path(sha256: &str) -> Path {
        Path::from(format!("blobs/sha256/{}/{sha256}", &sha256[..2]))
    }

    /// Starts streaming a new upload into the staging area.
    pub async fn begin_upload(&self) -> Result<Upload, StorageError> {
        let lease = self
            .lease
            .get_or_try_init(|| async { staging::Lease::take(self.local_root.as_deref()) })
            .await?;
        self.upload_to(lease.new_path()).await
    }

    /// Starts streaming a file to `path`.
    async fn upload_to(&self, path: Path) -> Result<Upload, StorageError> {
        Upload::begin(
            self.store.clone(),
            path,
            self.part_size(),
            PartialSha256::default(),
            false,
        )
        .await
    }

    fn part_size(&self) -> usize {
        if self.local_root.is_some() {
            upload::LOCAL_PART_SIZE
        } else {
            upload::REMOTE_PART_SIZE
        }
    }

    /// Where segment `name` of resumable upload `id` lives: outside the staging area, which
    /// belongs to one process, since any replica may continue the upload.
    pub fn resumable_path(id: uuid::Uuid, name: &str) -> Path {
        Path::from(format!("resumable/{id}/{name}"))
    }

    /// Starts streaming a segment of a resumable upload to `path` (see
    /// [`Self::resumable_path`]): its bytes continue the file's SHA-256 `file`, and are hashed
    /// on their own too when `own_sha256`.
    pub async fn begin_segment(
        &self,
        path: Path,
        file: PartialSha256,
        own_sha256: bool,
    ) -> Result<Upload, StorageError> {
        Upload::begin(self.store.clone(), path, self.part_size(), file, own_sha256).await
    }

    /// Writes the objects `parts` (with their sizes), one after another, as the one object
    /// `to`: on S3 by S3's own copies where it can, else by streaming the bytes through.
    pub async fn join(&self, parts: &[(Path, u64)], to: &Path) -> Result<(), StorageError> {
        if let Some(s3) = &self.s3
            && s3.join(parts, to).await?
        {
            return Ok(());
        }
        let multipart = self.store.put_multipart(to).await.map_err(map_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(multipart, self.part_size());
        let written = async {
            for (path, _) in parts {
                let mut bytes = self.read_at(path, None).await?;
                while let Some(chunk) = bytes.next().await {
                    writer
                        .wait_for_capacity(upload::MAX_IN_FLIGHT)
                        .await
                        .map_err(map_err)?;
                    writer.put(chunk?);
                }
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) => writer.finish().await.map(drop).map_err(map_err),
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(path = %to, error = %abort, "could not abort a join");
                }
                Err(e)
            }
        }
    }

    /// Streams `range` of the object at `path` (a resumable upload's segment).
    pub async fn read_object(
        &self,
        path: &Path,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        self.read_at(path, range).await
    }

    /// Deletes the objects under resumable upload `id` (best effort, logged).
    pub async fn delete_resumable(&self, id: uuid::Uuid) {
        let prefix = Path::from(format!("resumable/{id}"));
        let paths: Vec<_> = match self.store.list(Some(&prefix)).try_collect::<Vec<_>>().await {
            Ok(objects) => objects.into_iter().map(|o| o.location).collect(),
            Err(e) => {
                tracing::warn!(upload = %id, error = %e, "could not list a resumable upload's segments");
                return;
            }
        };
        for path in paths {
            if let Err(e) = self.store.delete(&path).await
                && !matches!(e, object_store::Error::NotFound { .. })
            {
                tracing::warn!(path = %path, error = %e, "could not delete a resumable upload's segment");
            }
        }
        if let Some(root) = &self.local_root {
            // The folder is empty now; one that is not stays.
            let _ = std::fs::remove_dir(root.join(prefix.as_ref()));
        }
    }

    /// Copies a completed upload to its content address ahead of [`Self::ensure_stored`] where
    /// moving is slow (S3 moves by copying the whole object), so that the move under the
    /// blob's lock has nothing left to do; the staged copy stays. A no-op on local disk.
    pub async fn prepare(&self, staged: &StagedBlob) -> Result<(), StorageError> {
        let Some(s3) = &self.s3 else {
            return Ok(());
        };
        if self.blob_size(&staged.sha256).await?.is_some() {
            return Ok(());
        }
        let target = Self::blob_path(&staged.sha256);
        s3.copy(&staged.staging_path, &target, staged.size).await
    }

    /// Makes sure a completed upload's content is at its content address: moves the staged
    /// file there unless identical content already is (then the staged copy stays, for the
    /// caller to discard), so each distinct file is stored once.
    pub async fn ensure_stored(&self, staged: &StagedBlob) -> Result<(), StorageError> {
        if self.blob_size(&staged.sha256).await?.is_some() {
            return Ok(());
        }
        let target = Self::blob_path(&staged.sha256);
        match &self.s3 {
            // object_store's rename on S3 is a CopyObject, limited to 5 GiB.
            Some(s3) => {
                s3.copy(&staged.staging_path, &target, staged.size).await?;
                self.discard(staged).await;
                Ok(())
            }
            None => self
                .store
                .rename(&staged.staging_path, &target)
                .await
                .map_err(map_err),
        }
    }

    /// A short-lived presigned GET of the blob on S3, whose answer carries
    /// `content_disposition`, when presigned downloads are configured; else `None` (the hub
    /// serves the bytes itself).
    pub async fn presigned_get(
        &self,
        sha256: &str,
        ttl: std::time::Duration,
        content_disposition: &str,
    ) -> Result<Option<url::Url>, StorageError> {
        match &self.s3 {
            Some(s3) => {
                s3.presigned_get(&Self::blob_path(sha256), ttl, content_disposition)
                    .await
            }
            None => Ok(None),
        }
    }

    /// Deletes a staged upload that will not be committed (best effort, logged).
    pub async fn discard(&self, staged: &StagedBlob) {
        self.delete_object(&staged.staging_path).await;
    }

    /// Deletes the object at `path`, outside the content addresses (best effort, logged).
    pub async fn delete_object(&self, path: &Path) {
        if let Err(e) = self.store.delete(path).await
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            tracing::warn!(path = %path, error = %e, "could not delete an object");
        }
    }

    /// Deletes the blob with this SHA-256; a missing blob is not an error.
    pub async fn delete_blob(&self, sha256: &str) -> Result<(), StorageError> {
        match self.store.delete(&Self::blob_path(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Whether the blob exists, and its size.
    pub async fn blob_size(&self, sha256: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&Self::blob_path(sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Streams `range` of the blob (the whole blob for `None`).
    pub async fn read(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        self.read_at(&Self::blob_path(sha256), range).await
    }

    /// Streams `range` of the object at `location`.
    async fn read_at(
        &self,
        location: &Path,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        // A small file on local disk is read in place: the page cache answers at once, and a
        // hand-off to the blocking pool would cost more than the read.
        if let Some(root) = &self.local_root
            && let Some(bytes) = read_small(&root.join(location.as_ref()), range.clone())?
        {
            return Ok(futures_util::stream::once(async move { Ok(bytes) }).boxed());
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(location, options)
            .await
            .map_err(map_err)?;
        let range = result.range.clone();
        match result.payload {
            GetResultPayload::File(file, _) => Ok(read_local(file, range)),
            GetResultPayload::Stream(stream) => Ok(stream.map_err(map_err).boxed()),
        }
    }

    /// An upload's content as a local file to read at will: the staged file, or, once it has
    /// moved, the blob at its content address.
    pub async fn upload_copy(&self, staged: &StagedBlob) -> Result<LocalCopy, StorageError> {
        match self.local_copy(&staged.staging_path).await {
            Err(StorageError::NotFound(_)) => {
                self.local_copy(&Self::blob_path(&staged.sha256)).await
            }
            other => other,
        }
    }

    /// A stored blob as a local file to read at will.
    pub async fn blob_copy(&self, sha256: &str) -> Result<LocalCopy, StorageError> {
        self.local_copy(&Self::blob_path(sha256)).await
    }

    /// The object at `location` as a local file: the file itself on local disk, or a
    /// temporary copy (removed when the returned guard drops) for remote stores.
    async fn local_copy(&self, location: &Path) -> Result<LocalCopy, StorageError> {
        let result = self.store.get(location).await.map_err(map_err)?;
        match result.payload {
            GetResultPayload::File(file, _) => Ok((file, None)),
            GetResultPayload::Stream(mut stream) => {
                let (file, path) = tempfile::NamedTempFile::new()?.into_parts();
                let mut writer = tokio::fs::File::from_std(file);
                while let Some(chunk) = stream.next().await {
                    tokio::io::AsyncWriteExt::write_all(&mut writer, &chunk.map_err(map_err)?)
                        .await?;
                }
                tokio::io::AsyncWriteExt::flush(&mut writer).await?;
                let file = std::fs::File::open(&path)?;
                Ok((file, Some(path)))
            }
        }
    }

    /// Checks that the store answers (for readiness probes).
    pub async fn check(&self) -> Result<(), StorageError> {
        match self.store.head(&Path::from("readiness-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Removes what uploads cut short by a crash left in the staging area; returns how many
    /// files went. On local disk a dead process's files go at once (see [`staging`]); on S3,
    /// staging objects go once older than `grace` (younger ones may be in flight on another
    /// replica), and unfinished multipart uploads are left to the bucket's lifecycle rule.
    pub async fn sweep_staging(&self, grace: std::time::Duration) -> Result<usize, StorageError> {
        if let Some(root) = self.local_root.clone() {
            return tokio::task::spawn_blocking(move || staging::sweep_local(&root, grace))
                .await
                .map_err(std::io::Error::other)?
                .map_err(StorageError::Io);
        }
        let prefix = Path::from(staging::PREFIX);
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let stale: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_filter(|meta| futures_util::future::ready(meta.last_modified <= cutoff))
            .try_collect()
            .await
            .map_err(map_err)?;
        for meta in &stale {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(stale.len())
    }

    /// Removes this process's staging area as it stops (local disk; on S3 uploads cut short
    /// are aborted by the bucket's lifecycle rule). Returns how many partial uploads went.
    pub fn clear_own_staging(&self) -> Result<usize, StorageError> {
        match (&self.local_root, self.lease.get()) {
            (Some(root), Some(lease)) => Ok(lease.clear(root)?),
            _ => Ok(0),
        }
    }

    /// Every stored blob.
    pub async fn list_blobs(&self) -> Result<Vec<BlobInfo>, StorageError> {
        let prefix = Path::from("blobs/sha256");
        self.store
            .list(Some(&prefix))
            .map_err(map_err)
            .try_filter_map(|meta| async move {
                let name = meta.location.filename().unwrap_or_default().to_owned();
                let is_hash = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
                Ok(is_hash.then_some(BlobInfo {
                    sha256: name,
                    size: meta.size,
                    last_modified: meta.last_modified,
                }))
            })
            .try_collect()
            .await
    }

    /// Re-hashes a blob: its SHA-256 and size, or `None` if it is missing.
    pub async fn hash_blob(&self, sha256: &str) -> Result<Option<(String, u64)>, StorageError> {
        use sha2::{Digest, Sha256};
        let mut stream = match self.read(sha256, None).await {
            Ok(stream) => stream,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some((
            crate::auth::api_token::hex(&hasher.finalize()),
            size,
        )))
    }
}
