//! What an S3 store needs beyond `ObjectStore`: copies of objects larger than one CopyObject
//! may copy (5 GiB), and objects joined from others, made as multipart uploads whose parts S3
//! copies itself (UploadPartCopy); and presigned downloads that send a client to S3 for the
//! bytes.

use std::{ops::Range, time::Duration};

use futures_util::{StreamExt, TryStreamExt};
use object_store::{
    MultipartId, ObjectStoreExt,
    aws::AmazonS3,
    multipart::{MultipartStore, PartId},
    path::Path,
    signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer},
};
use url::Url;

use super::{StorageError, map_err};
use crate::config::S3Options;

/// S3's smallest part of a multipart upload (but the last).
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3's most parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// The largest part copied by one UploadPartCopy: big enough that a 20 GB file is 40 parts,
/// small enough that a part copy finishes well inside a request timeout.
const MAX_COPY_PART_BYTES: u64 = 512 * 1024 * 1024;
/// Part copies in flight at once.
const PARTS_AT_ONCE: usize = 4;
/// How long the signed request for one part copy is valid.
const PART_SIGNATURE_TTL: Duration = Duration::from_secs(15 * 60);

/// The S3 bucket behind a [`super::BlobStore`], for the calls `ObjectStore` does not make.
#[derive(Debug, Clone)]
pub(super) struct S3 {
    client: AmazonS3,
    bucket: String,
    /// The store's prefix inside the bucket (paths given here are below it).
    prefix: Path,
    http: reqwest::Client,
    options: S3Options,
}

impl S3 {
    pub(super) fn new(client: AmazonS3, bucket: &str, prefix: &str, options: &S3Options) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix: Path::from(prefix),
            http: reqwest::Client::new(),
            options: options.clone(),
        }
    }

    /// The object's key in the bucket.
    fn key(&self, path: &Path) -> Path {
        self.prefix.parts().chain(path.parts()).collect()
    }

    /// Copies the object at `from` (of `size` bytes) to `to` inside the bucket: one CopyObject
    /// up to [`S3Options::max_single_copy`], else copied in parts.
    pub(super) async fn copy(&self, from: &Path, to: &Path, size: u64) -> Result<(), StorageError> {
        if size <= self.options.max_single_copy {
            return self
                .client
                .copy(&self.key(from), &self.key(to))
                .await
                .map_err(map_err);
        }
        let part_bytes = part_bytes(size, self.options.max_single_copy);
        let pieces = (0..size.div_ceil(part_bytes))
            .map(|i| {
                (
                    from.clone(),
                    i * part_bytes..((i + 1) * part_bytes).min(size),
                )
            })
            .collect();
        self.copy_parts(pieces, to).await
    }

    /// Joins the objects `parts` (with their sizes), in order, into the object `to`, copied by
    /// S3 itself; `false`, with nothing done, where S3 cannot: a part but the last under S3's
    /// smallest part size, or too many parts.
    pub(super) async fn join(
        &self,
        parts: &[(Path, u64)],
        to: &Path,
    ) -> Result<bool, StorageError> {
        match join_pieces(parts) {
            Some(pieces) => self.copy_parts(pieces, to).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Makes the object `to` of `pieces` (ranges of objects, in order) as a multipart upload
    /// whose parts S3 copies, a few at once; aborted if any part fails, so nothing is left
    /// half-made at `to`.
    async fn copy_parts(
        &self,
        pieces: Vec<(Path, Range<u64>)>,
        to: &Path,
    ) -> Result<(), StorageError> {
        let to = self.key(to);
        let id = self.client.create_multipart(&to).await.map_err(map_err)?;
        let parts: Result<Vec<PartId>, StorageError> =
            futures_util::stream::iter(pieces.into_iter().enumerate())
                .map(|(index, (from, range))| {
                    let (to, id) = (&to, &id);
                    async move {
                        self.copy_part(&self.key(&from), to, id, index as u64, range)
                            .await
                    }
                })
                .buffered(PARTS_AT_ONCE)
                .try_collect()
                .await;
        let completed = match parts {
            Ok(parts) => self
                .client
                .complete_multipart(&to, &id, parts)
                .await
                .map_err(map_err),
            Err(e) => Err(e),
        };
        if completed.is_err()
            && let Err(e) = self.client.abort_multipart(&to, &id).await
        {
            tracing::warn!(path = %to, error = %e, "could not abort a multipart copy");
        }
        completed.map(drop)
    }

    /// Copies `range` of `from` as part `index` (from 0) of the multipart upload `id`.
    async fn copy_part(
        &self,
        from: &Path,
        to: &Path,
        id: &MultipartId,
        index: u64,
        range: Range<u64>,
    ) -> Result<PartId, StorageError> {
        let header = |value: String| {
            HeaderValue::try_from(value).map_err(|e| StorageError::PartCopy(e.to_string()))
        };
        let source = header(format!("{}/{from}", self.bucket))?;
        let source_range = header(format!("bytes={}-{}", range.start, range.end - 1))?;
        let options = SignedUrlOptions::default()
            .with_query([
                ("partNumber", (index + 1).to_string()),
                ("uploadId", id.clone()),
            ])
            .with_signed_header(HeaderName::from_static("x-amz-copy-source"), source.clone())
            .with_signed_header(
                HeaderName::from_static("x-amz-copy-source-range"),
                source_range.clone(),
            );
        let url = self
            .client
            .signed_url_opts(Method::PUT, to, PART_SIGNATURE_TTL, &options)
            .await
            .map_err(map_err)?;
        let response = self
            .http
            .put(url)
            .header("x-amz-copy-source", source)
            .header("x-amz-copy-source-range", source_range)
            .send()
            .await
            .map_err(StorageError::PartCopyRequest)?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(StorageError::PartCopyRequest)?;
        // S3 may answer 200 with an error in the body: only an ETag means the part was copied.
        match element(&body, "ETag") {
            Some(etag) if status.is_success() => Ok(PartId {
                content_id: etag.replace("&quot;", "\""),
            }),
            _ => Err(StorageError::PartCopy(format!(
                "part {} answered {status}: {}",
                index + 1,
                body.chars().take(300).collect::<String>()
            ))),
        }
    }

    /// A presigned GET of the object at `path`, valid for `ttl`, whose answer carries
    /// `Content-Disposition: content_disposition`; `None` unless presigned downloads are on.
    pub(super) async fn presigned_get(
        &self,
        path: &Path,
        ttl: Duration,
        content_disposition: &str,
    ) -> Result<Option<Url>, StorageError> {
        if !self.options.presigned_downloads {
            return Ok(None);
        }
        let options = SignedUrlOptions::default()
            .with_query([("response-content-disposition", content_disposition)]);
        self.client
            .signed_url_opts(Method::GET, &self.key(path), ttl, &options)
            .await
            .map(Some)
            .map_err(map_err)
    }
}

/// The part size for a multipart copy of `size` bytes: at most `largest` (and
/// [`MAX_COPY_PART_BYTES`]), at least S3's minimum, and large enough for S3's part count limit.
fn part_bytes(size: u64, largest: u64) -> u64 {
    largest
        .clamp(MIN_PART_BYTES, MAX_COPY_PART_BYTES)
        .max(size.div_ceil(MAX_PARTS))
}

/// The part copies that join `parts` (objects with their sizes, in order): each object in
/// equal pieces of at most [`MAX_COPY_PART_BYTES`]; `None` where S3 cannot join them so (an
/// object but the last under its smallest part, too many parts, or nothing to join).
fn join_pieces(parts: &[(Path, u64)]) -> Option<Vec<(Path, Range<u64>)>> {
    let (_, leading) = parts.split_last()?;
    if leading.iter().any(|(_, size)| *size < MIN_PART_BYTES) {
        return None;
    }
    let pieces: Vec<_> = parts
        .iter()
        .flat_map(|(path, size)| {
            let count = size.div_ceil(MAX_COPY_PART_BYTES);
            let piece = size.div_ceil(count.max(1));
            (0..count).map(move |i| (path.clone(), i * piece..((i + 1) * piece).min(*size)))
        })
        .collect();
    (!pieces.is_empty() && pieces.len() as u64 <= MAX_PARTS).then_some(pieces)
}

/// The text of the first `<name>` element of an XML answer.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_respect_s3_limits() {
        const GIB: u64 = 1024 * 1024 * 1024;
        assert_eq!(part_bytes(12 * 1024 * 1024, MIN_PART_BYTES), MIN_PART_BYTES);
        assert_eq!(part_bytes(6 * GIB, 5 * GIB), MAX_COPY_PART_BYTES);
        // A lower limit than S3's smallest part still makes valid parts.
        assert_eq!(part_bytes(20 * 1024 * 1024, 1024), MIN_PART_BYTES);
        // 10,000 parts at most, even for 50 TB.
        let huge = 50 * 1024 * GIB;
        assert!(huge.div_ceil(part_bytes(huge, 5 * GIB)) <= MAX_PARTS);
    }

    #[test]
    fn joins_are_planned_within_s3_limits() {
        const MIB: u64 = 1024 * 1024;
        let (a, b) = (Path::from("a"), Path::from("b"));
        let ranges = |parts: &[(Path, u64)]| {
            join_pieces(parts).map(|pieces| {
                pieces
                    .into_iter()
                    .map(|(path, range)| (path.to_string(), range))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            ranges(&[(a.clone(), 6 * MIB), (b.clone(), 1)]),
            Some(vec![("a".into(), 0..6 * MIB), ("b".into(), 0..1)])
        );
        // A part under 5 MiB may only come last.
        assert_eq!(ranges(&[(a.clone(), MIB), (b.clone(), 6 * MIB)]), None);
        // A part larger than one copy may copy is copied in equal pieces.
        assert_eq!(
            ranges(&[(a.clone(), 600 * MIB), (b, 2)]),
            Some(vec![
                ("a".into(), 0..300 * MIB),
                ("a".into(), 300 * MIB..600 * MIB),
                ("b".into(), 0..2)
            ])
        );
        assert_eq!(ranges(&[]), None);
        assert_eq!(ranges(&[(a, 0)]), None);
    }

    #[test]
    fn the_etag_is_read_from_a_copy_answer() {
        let answer = "<?xml version=\"1.0\"?><CopyPartResult><LastModified>2026-12-02T00:00:00Z\
                      </LastModified><ETag>&quot;abc&quot;</ETag></CopyPartResult>";
        assert_eq!(element(answer, "ETag"), Some("&quot;abc&quot;"));
        assert_eq!(
            element("<Error><Code>InternalError</Code></Error>", "ETag"),
            None
        );
    }
}
