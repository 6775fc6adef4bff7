//! One upload in flight: bytes are counted and written to the staging area as they arrive
//! while blocking threads hash them, so that receiving, hashing and writing overlap; memory
//! stays bounded (see [`HASH_BATCH`] and [`MAX_IN_FLIGHT`]).

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart, path::Path};
use sha2::{Digest, Sha256, digest::common::hazmat::SerializableState};
use tokio::task::JoinHandle;

use super::{StorageError, map_err};
use crate::auth::api_token::hex;

/// The size of the parts handed to a remote store (S3's minimum part size is 5 MiB).
pub(super) const REMOTE_PART_SIZE: usize = 5 * 1024 * 1024;
/// The size of the parts written to local disk: smaller parts keep less in memory.
pub(super) const LOCAL_PART_SIZE: usize = 1024 * 1024;
/// Parts in flight at once: bounds memory to about `part size * (MAX_IN_FLIGHT + 1)`.
pub(super) const MAX_IN_FLIGHT: usize = 2;
/// How many leading bytes are kept to recognise the file format.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Bytes hashed together on a blocking thread: large enough that the hop is cheap, small
/// enough that little waits in memory.
const HASH_BATCH: usize = 1024 * 1024;

/// The SHA-256 of a file's first bytes, which later bytes continue: storable between requests
/// (as text), so a resumable upload's bytes are hashed once, as they arrive, whichever replica
/// receives them.
#[derive(Clone, Default)]
pub struct PartialSha256(Sha256);

impl PartialSha256 {
    /// The state as text, to be read back by [`Self::from_text`].
    pub fn to_text(&self) -> String {
        STANDARD_NO_PAD.encode(self.0.serialize())
    }

    /// The state [`Self::to_text`] wrote; `None` for anything else (such as a state written by
    /// another version of the hash crate).
    pub fn from_text(text: &str) -> Option<Self> {
        let bytes = STANDARD_NO_PAD.decode(text).ok()?;
        let state = bytes.as_slice().try_into().ok()?;
        Sha256::deserialize(state).ok().map(Self)
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The lower-case hex SHA-256 of all the bytes.
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// What an upload's bytes are hashed into: the file they belong to, and, when asked, these
/// bytes alone (for a resumable upload's checksum).
#[derive(Clone, Default)]
struct Hashes {
    file: PartialSha256,
    own: Option<Sha256>,
}

impl Hashes {
    fn update(&mut self, chunk: &[u8]) {
        self.file.update(chunk);
        if let Some(own) = &mut self.own {
            own.update(chunk);
        }
    }
}

/// SHA-256 off the receiving task: chunks gather into batches of [`HASH_BATCH`] bytes, each
/// hashed on a blocking thread while the next one gathers. A thread is held only while it
/// hashes (a slow upload holds none), and at most two batches are in memory.
struct Hasher {
    batch: Vec<Bytes>,
    batched: usize,
    /// The hashes of the batches so far: ready, or being computed.
    state: HashState,
}

enum HashState {
    Ready(Box<Hashes>),
    Hashing(JoinHandle<Box<Hashes>>),
}

impl Hasher {
    fn start(hashes: Hashes) -> Self {
        Self {
            batch: Vec::new(),
            batched: 0,
            state: HashState::Ready(Box::new(hashes)),
        }
    }

    /// Adds a chunk; when a batch is full, waits for the previous batch's hash and starts this
    /// one's.
    async fn update(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= HASH_BATCH {
            let mut hashes = self.ready().await?;
            let batch = std::mem::take(&mut self.batch);
            self.batched = 0;
            self.state = HashState::Hashing(tokio::task::spawn_blocking(move || {
                for chunk in &batch {
                    hashes.update(chunk);
                }
                hashes
            }));
        }
        Ok(())
    }

    /// The hashes so far, once the batch being hashed is done.
    async fn ready(&mut self) -> Result<Box<Hashes>, StorageError> {
        match std::mem::replace(&mut self.state, HashState::Ready(Box::default())) {
            HashState::Ready(hashes) => Ok(hashes),
            HashState::Hashing(task) => task.await.map_err(StorageError::HashingStopped),
        }
    }

    /// The hashes of everything added.
    async fn finish(mut self) -> Result<Box<Hashes>, StorageError> {
        let mut hashes = self.ready().await?;
        for chunk in &self.batch {
            hashes.update(chunk);
        }
        Ok(hashes)
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

/// Some of a resumable upload's bytes, durable in the store.
#[derive(Clone)]
pub struct StagedSegment {
    /// Where they are.
    pub path: Path,
    /// How many.
    pub size: u64,
    /// The file's SHA-256 continued over them.
    pub file: PartialSha256,
    /// Their own SHA-256 (lower-case hex), when it was asked for.
    pub sha256: Option<String>,
}

impl Upload {
    /// Starts writing to `path`; the bytes continue the SHA-256 `file`, and are hashed on their
    /// own too when `own_sha256`.
    pub(super) async fn begin(
        store: Arc<dyn ObjectStore>,
        path: Path,
        part_size: usize,
        file: PartialSha256,
        own_sha256: bool,
    ) -> Result<Self, StorageError> {
        let multipart = store.put_multipart(&path).await.map_err(map_err)?;
        Ok(Self {
            writer: WriteMultipart::new_with_chunk_size(multipart, part_size),
            path,
            hasher: Hasher::start(Hashes {
                file,
                own: own_sha256.then(Sha256::new),
            }),
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
        let (written, hashes) = tokio::join!(self.writer.finish(), self.hasher.finish());
        written.map_err(map_err)?;
        Ok(StagedBlob {
            staging_path: self.path,
            sha256: hashes?.file.finish(),
            size: self.size,
            head: self.head,
        })
    }

    /// Completes a resumable upload's segment: once this returns, its bytes are durable.
    pub async fn finish_segment(self) -> Result<StagedSegment, StorageError> {
        let (written, hashes) = tokio::join!(self.writer.finish(), self.hasher.finish());
        written.map_err(map_err)?;
        let hashes = hashes?;
        Ok(StagedSegment {
            path: self.path,
            size: self.size,
            file: hashes.file,
            sha256: hashes.own.map(|own| hex(&own.finalize())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_hash_continues_from_its_text() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cut in [0, 1, 63, 64, 65, 4_097, 10_000] {
            let mut first = PartialSha256::default();
            first.update(&bytes[..cut]);
            let mut resumed = PartialSha256::from_text(&first.to_text()).unwrap();
            resumed.update(&bytes[cut..]);
            assert_eq!(
                resumed.finish(),
                hex(&Sha256::digest(&bytes)),
                "cut at {cut}"
            );
        }
        assert!(PartialSha256::from_text("not a state").is_none());
        assert!(PartialSha256::from_text("").is_none());
    }
}
