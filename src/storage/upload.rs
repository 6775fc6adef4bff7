//! One upload in flight: bytes are counted and written to the staging area as they arrive
//! while a thread of their own hashes them, so that receiving, hashing and writing overlap;
//! memory stays bounded (see [`HASH_BUDGET`] and [`MAX_IN_FLIGHT`]).

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart, path::Path};
use sha2::{Digest, Sha256};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
};

use super::{StorageError, map_err};
use crate::auth::api_token::hex;

/// The size of the parts handed to a remote store (S3's minimum part size is 5 MiB).
pub(super) const REMOTE_PART_SIZE: usize = 5 * 1024 * 1024;
/// The size of the parts written to local disk: smaller parts keep less in memory.
pub(super) const LOCAL_PART_SIZE: usize = 1024 * 1024;
/// Parts in flight at once: bounds memory to about `part size * (MAX_IN_FLIGHT + 1)`.
const MAX_IN_FLIGHT: usize = 2;
/// How many leading bytes are kept to recognise the file format.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Bytes received but not yet hashed, at most: the receiver waits when the hasher is this far
/// behind.
const HASH_BUDGET: usize = 2 * 1024 * 1024;

/// SHA-256 on a blocking thread of its own, fed chunks through a channel whose bytes are
/// bounded by [`HASH_BUDGET`].
struct Hasher {
    chunks: mpsc::UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
    digest: JoinHandle<String>,
}

impl Hasher {
    fn start() -> Self {
        let (chunks, mut received) = mpsc::unbounded_channel::<(Bytes, OwnedSemaphorePermit)>();
        let digest = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            // The permit goes with the chunk: its bytes count against the budget until hashed.
            while let Some((chunk, _permit)) = received.blocking_recv() {
                hasher.update(&chunk);
            }
            hex(&hasher.finalize())
        });
        Self {
            chunks,
            budget: Arc::new(Semaphore::new(HASH_BUDGET)),
            digest,
        }
    }

    /// Hands a chunk to the hashing thread, waiting while the budget is spent.
    async fn update(&self, chunk: Bytes) -> Result<(), StorageError> {
        // A chunk larger than the whole budget waits for all of it.
        let cost = u32::try_from(chunk.len().min(HASH_BUDGET)).unwrap_or(u32::MAX);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| StorageError::HashingStopped(None))?;
        self.chunks
            .send((chunk, permit))
            .map_err(|_| StorageError::HashingStopped(None))
    }

    /// The SHA-256 of everything sent, once the thread has hashed it.
    async fn finish(self) -> Result<String, StorageError> {
        drop(self.chunks);
        self.digest
            .await
            .map_err(|e| StorageError::HashingStopped(Some(e)))
    }
}

/// A file being written to the staging area.
pub struct Upload {
    writer: WriteMultipart,
    path: Path,
    hasher: Hasher,
    size: u64,
    head: Vec<u8>,
}

/// A complete, durable upload, not yet at its content address.
#[derive(Debug, Clone)]
pub struct StagedBlob {
    /// Where it is now.
    pub staging_path: Path,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its first bytes (up to 64 KiB), for format detection.
    pub head: Vec<u8>,
}

impl Upload {
    pub(super) async fn begin(
        store: Arc<dyn ObjectStore>,
        path: Path,
        part_size: usize,
    ) -> Result<Self, StorageError> {
        let multipart = store.put_multipart(&path).await.map_err(map_err)?;
        Ok(Self {
            writer: WriteMultipart::new_with_chunk_size(multipart, part_size),
            path,
            hasher: Hasher::start(),
            size: 0,
            head: Vec::new(),
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a chunk, waiting while too many parts are in flight or the hasher is too far
    /// behind.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.writer
            .wait_for_capacity(MAX_IN_FLIGHT)
            .await
            .map_err(map_err)?;
        self.hasher.update(chunk.clone()).await?;
        self.size += chunk.len() as u64;
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.writer.put(chunk);
        Ok(())
    }

    /// Completes the upload: once this returns, the bytes are durable in the staging area.
    pub async fn finish(self) -> Result<StagedBlob, StorageError> {
        let (written, sha256) = tokio::join!(self.writer.finish(), self.hasher.finish());
        written.map_err(map_err)?;
        Ok(StagedBlob {
            staging_path: self.path,
            sha256: sha256?,
            size: self.size,
            head: self.head,
        })
    }

    /// Abandons the upload and removes what was written.
    pub async fn abort(self) {
        let path = self.path.clone();
        if let Err(e) = self.writer.abort().await {
            tracing::warn!(path = %path, error = %e, "could not abort staged upload");
        }
    }
}
