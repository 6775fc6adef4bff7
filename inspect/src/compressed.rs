//! The compressed containers joblib writes and reads (zlib, gzip, bz2, xz, lzma, lz4),
//! decoded as streams: nothing is held in memory beyond the decoders' own windows.

use std::io::{self, BufRead, Read};

/// The most memory an xz or lzma decoder may take (its dictionary is declared by the file).
const LZMA_MEMORY: u64 = 256 * 1024 * 1024;

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zlib,
    Gzip,
    Bzip2,
    Xz,
    Lzma,
    Lz4,
}

impl Codec {
    /// The codec whose signature starts `head`, if any.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        const SIGNATURES: &[(&[u8], Codec)] = &[
            (b"\x78\x01", Codec::Zlib),
            (b"\x78\x5e", Codec::Zlib),
            (b"\x78\x9c", Codec::Zlib),
            (b"\x78\xda", Codec::Zlib),
            (b"\x1f\x8b", Codec::Gzip),
            (b"BZh", Codec::Bzip2),
            (b"\xfd7zXZ\x00", Codec::Xz),
            // joblib recognises lzma's "alone" format by these two bytes only.
            (b"\x5d\x00", Codec::Lzma),
            (b"\x04\x22\x4d\x18", Codec::Lz4),
        ];
        SIGNATURES
            .iter()
            .find(|(magic, _)| head.starts_with(magic))
            .map(|(_, codec)| *codec)
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Zlib => "zlib",
            Self::Gzip => "gzip",
            Self::Bzip2 => "bz2",
            Self::Xz => "xz",
            Self::Lzma => "lzma",
            Self::Lz4 => "lz4",
        }
    }

    /// A reader of the decompressed bytes. Streams that follow one another are read on, as
    /// Python's readers do; bytes after the last one that are not another stream fail.
    pub fn decoder<'a, R: BufRead + 'a>(self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Self::Zlib => Box::new(Concatenated::new(
                input,
                |r| Ok(flate2::bufread::ZlibDecoder::new(r)),
                flate2::bufread::ZlibDecoder::into_inner,
            )?),
            Self::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Self::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
            Self::Xz => {
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    LZMA_MEMORY,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(io::Error::other)?;
                Box::new(liblzma::bufread::XzDecoder::new_stream(input, stream))
            }
            Self::Lzma => Box::new(Concatenated::new(
                input,
                |r| {
                    let stream = liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMORY)
                        .map_err(io::Error::other)?;
                    Ok(liblzma::bufread::XzDecoder::new_stream(r, stream))
                },
                liblzma::bufread::XzDecoder::into_inner,
            )?),
            Self::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
        })
    }
}

/// Streams of a format without its own framing of several, one after another.
struct Concatenated<R, D> {
    decoder: Option<D>,
    start: fn(R) -> io::Result<D>,
    input: fn(D) -> R,
}

impl<R: BufRead, D: Read> Concatenated<R, D> {
    fn new(input: R, start: fn(R) -> io::Result<D>, inner: fn(D) -> R) -> io::Result<Self> {
        Ok(Self {
            decoder: Some(start(input)?),
            start,
            input: inner,
        })
    }
}

impl<R: BufRead, D: Read> Read for Concatenated<R, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This stream ended: another may follow.
            let Some(mut input) = self.decoder.take().map(self.input) else {
                return Ok(0);
            };
            if input.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.decoder = Some((self.start)(input)?);
        }
    }
}
