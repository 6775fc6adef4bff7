//! One upload in flight: bytes are counted and written to the staging area as they arrive
//! while blocking threads hash them, so that receiving, hashing and writing overlap; memory
//! stays bounded (see [`HASH_BATCH`] and [`MAX_IN_FLIGHT`]).

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart, path::Path};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

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
/// Bytes hashed together on a blocking thread: large enough that the hop is cheap, small
/// enough that little waits in memory.
const HASH_BATCH: usize = 1024 * 1024;

/// SHA-256 off the receiving task: chunks gather into batches of [`HASH_BATCH`] bytes, each
/// hashed on a blocking thread while the next one gathers. A thread is held only while it
/// hashes (a slow upload holds none), and at most two batches are in memory.
struct Hasher {
    batch: Vec<Bytes>,
    batched: usize,
    /// The hash of the batches so far: ready, or being computed.
    state: HashState,
}

enum HashState {
    Ready(Sha256),
    Hashing(JoinHandle<Sha256>),
}

impl Hasher {
    fn start() -> Self {
        Self {
            batch: Vec::new(),
            batched: 0,
            state: HashState::Ready(Sha256::new()),
        }
    }

    /// Adds a chunk; when a batch is full, waits for the previous batch's hash and starts this
    /// one's.
    async fn update(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= HASH_BATCH {
            let mut hasher = self.ready().await?;
            let batch = std::mem::take(&mut self.batch);
            self.batched = 0;
            self.state = HashState::Hashing(tokio::task::spawn_blocking(move || {
                for chunk in &batch {
                    hasher.update(chunk);
                }
                hasher
            }));
        }
        Ok(())
    }

    /// The hash so far, once the batch being hashed is done.
    async fn ready(&mut self) -> Result<Sha256, StorageError> {
        let state = std::mem::replace(&mut self.state, HashState::Ready(Sha256::new()));
        match state {
            HashState::Ready(hasher) => Ok(hasher),
            HashState::Hashing(task) => task.await.map_err(StorageError::HashingStopped),
        }
    }

    /// The SHA-256 of everything added.
    async fn finish(mut self) -> Result<String, StorageError> {
        let mut hasher = self.ready().await?;
        for chunk in &self.batch {
            hasher.update(chunk);
        }
        Ok(hex(&hasher.finalize()))
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
