//! A version's files as one POSIX `tar` archive, built on the fly: its length is known before
//! the first byte (so `Content-Length` and `Range` work), headers are made as they are sent
//! and file bytes stream from the blob store, so memory stays flat however big the version.
//!
//! Each file is a ustar entry (mode 0644, owner 0:0, no user or group names, the version's
//! creation time), as `tar --format=ustar --numeric-owner --owner=0 --group=0 --mode=0644
//! --mtime=@T -b 1` writes it; a path that ustar cannot hold, or a file of 8 GiB or more, gets
//! a pax extended header before it. The archive ends with two zero blocks.

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{BlobStore, ByteStream};

const BLOCK: u64 = 512;
/// The largest size a ustar header's 11 octal digits hold.
const MAX_USTAR_SIZE: u64 = 0o77_777_777_777;

/// One file of the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy)]
enum Part {
    /// The pax extended header (header block and records, padded) of entry `n`.
    Pax(usize),
    /// The ustar header block of entry `n`.
    Header(usize),
    /// The bytes of entry `n`.
    Data(usize),
    /// Zero bytes: padding to a block, or the end of the archive.
    Zeros,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u64,
    len: u64,
    part: Part,
}

/// A version's archive, laid out.
#[derive(Debug)]
pub struct Tarball {
    entries: Vec<Entry>,
    mtime: u64,
    segments: Vec<Segment>,
    len: u64,
}

fn padding(len: u64) -> u64 {
    (BLOCK - len % BLOCK) % BLOCK
}

/// Where ustar splits a long path: `prefix` (at most 155 bytes) and `name` (at most 100), at
/// the last `/` that keeps the prefix short enough, as GNU tar does.
fn split_ustar(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    let limit = path.len().min(156);
    let cut = path.as_bytes()[..limit].iter().rposition(|b| *b == b'/')?;
    let (prefix, name) = (&path[..cut], &path[cut + 1..]);
    (cut > 0 && prefix.len() <= 155 && !name.is_empty() && name.len() <= 100)
        .then_some((prefix, name))
}

fn needs_pax(entry: &Entry) -> bool {
    split_ustar(&entry.path).is_none() || entry.size > MAX_USTAR_SIZE
}

/// The pax records of an entry: its path and size, each `"<len> <key>=<value>\n"` where `len`
/// counts the whole record.
fn pax_records(entry: &Entry) -> Vec<u8> {
    let record = |key: &str, value: &str| {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}")
    };
    let mut records = record("path", &entry.path);
    if entry.size > MAX_USTAR_SIZE {
        records.push_str(&record("size", &entry.size.to_string()));
    }
    records.into_bytes()
}

/// Writes `value` as zero-padded octal in `field`, ending in NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let text = &text.as_bytes()[text.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(text);
    field[digits] = 0;
}

/// A ustar header block.
fn header(name: &[u8], prefix: &[u8], size: u64, mtime: u64, kind: u8) -> [u8; 512] {
    let mut block = [0u8; 512];
    block[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut block[100..108], 0o644);
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    octal(
        &mut block[124..136],
        if size > MAX_USTAR_SIZE { 0 } else { size },
    );
    octal(&mut block[136..148], mtime);
    block[156] = kind;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    octal(&mut block[329..337], 0);
    octal(&mut block[337..345], 0);
    block[345..345 + prefix.len().min(155)].copy_from_slice(&prefix[..prefix.len().min(155)]);
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
    block[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    block[154] = 0;
    block[155] = b' ';
    block
}

impl Tarball {
    /// Lays out the archive of `entries` (in their order), with modification time `mtime`
    /// (seconds since the epoch).
    pub fn new(entries: Vec<Entry>, mtime: u64) -> Self {
        let mut segments = Vec::with_capacity(entries.len() * 3 + 1);
        let mut at = 0;
        let mut push = |len: u64, part: Part| {
            if len > 0 {
                segments.push(Segment {
                    start: at,
                    len,
                    part,
                });
                at += len;
            }
        };
        for (n, entry) in entries.iter().enumerate() {
            if needs_pax(entry) {
                let records = pax_records(entry).len() as u64;
                push(BLOCK + records + padding(records), Part::Pax(n));
            }
            push(BLOCK, Part::Header(n));
            push(entry.size, Part::Data(n));
            push(padding(entry.size), Part::Zeros);
        }
        push(2 * BLOCK, Part::Zeros);
        Self {
            entries,
            mtime,
            segments,
            len: at,
        }
    }

    /// The archive's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the archive has no entries (it is then two zero blocks).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes of a generated part (headers; zeros).
    fn generated(&self, segment: &Segment) -> Vec<u8> {
        match segment.part {
            Part::Pax(n) => {
                let entry = &self.entries[n];
                let records = pax_records(entry);
                let name = format!("PaxHeaders/{}", entry.path.rsplit('/').next().unwrap_or(""));
                let mut bytes = header(
                    truncated(&name, 100),
                    b"",
                    records.len() as u64,
                    self.mtime,
                    b'x',
                )
                .to_vec();
                bytes.extend_from_slice(&records);
                bytes.resize(segment.len as usize, 0);
                bytes
            }
            Part::Header(n) => {
                let entry = &self.entries[n];
                let (prefix, name) = split_ustar(&entry.path).unwrap_or(("", entry.path.as_str()));
                header(
                    truncated(name, 100),
                    prefix.as_bytes(),
                    entry.size,
                    self.mtime,
                    b'0',
                )
                .to_vec()
            }
            Part::Zeros | Part::Data(_) => vec![0; segment.len as usize],
        }
    }

    /// Streams bytes `range` of the archive, reading file bytes from `blobs`.
    pub fn stream(self: Arc<Self>, blobs: BlobStore, range: Range<u64>) -> ByteStream {
        let parts: Vec<(Segment, Range<u64>)> = self
            .segments
            .iter()
            .filter(|s| s.start < range.end && range.start < s.start + s.len)
            .map(|s| {
                let from = range.start.max(s.start) - s.start;
                let to = range.end.min(s.start + s.len) - s.start;
                (*s, from..to)
            })
            .collect();
        stream::iter(parts)
            .map(move |(segment, within)| match segment.part {
                Part::Data(n) => {
                    let sha256 = self.entries[n].sha256.clone();
                    let blobs = blobs.clone();
                    stream::once(async move { blobs.read(&sha256, Some(within)).await })
                        .try_flatten()
                        .boxed()
                }
                _ => {
                    let bytes = self.generated(&segment);
                    let slice =
                        Bytes::from(bytes).slice(within.start as usize..within.end as usize);
                    stream::once(async move { Ok(slice) }).boxed()
                }
            })
            .flatten()
            .boxed()
    }
}

/// At most `max` bytes of `text`.
fn truncated(text: &str, max: usize) -> &[u8] {
    &text.as_bytes()[..text.len().min(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_split_like_gnu_tar_or_need_pax() {
        assert_eq!(split_ustar("a/b.json"), Some(("", "a/b.json")));
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        assert_eq!(split_ustar(&long), Some((&long[..120], &long[121..])));
        assert_eq!(split_ustar(&"x".repeat(101)), None);
        let deep = format!("{}/{}", "d".repeat(160), "f".repeat(10));
        assert_eq!(split_ustar(&deep), None);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let entry = Entry {
            path: "p".repeat(95),
            sha256: String::new(),
            size: 1,
        };
        let records = String::from_utf8(pax_records(&entry)).unwrap();
        let (len, _) = records.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), records.len());
        assert_eq!(records.len(), 105, "{records}");
    }

    #[test]
    fn the_length_is_the_sum_of_blocks() {
        let entries = vec![
            Entry {
                path: "a".into(),
                sha256: String::new(),
                size: 7,
            },
            Entry {
                path: "b".into(),
                sha256: String::new(),
                size: 512,
            },
        ];
        assert_eq!(Tarball::new(entries, 0).len(), 512 + 512 + 512 + 512 + 1024);
        assert_eq!(Tarball::new(Vec::new(), 0).len(), 1024);
    }
}
