//! Recognising file formats by their first bytes.

/// The HDF5 superblock signature.
pub const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";
/// A zip archive's first local file header.
pub const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// GGUF's magic.
pub const GGUF_MAGIC: &[u8] = b"GGUF";

/// Whether the bytes start like a compressed stream joblib reads (zlib, gzip, bz2, xz, lzma,
/// lz4).
pub fn is_joblib_compressed(head: &[u8]) -> bool {
    crate::compressed::Codec::sniff(head).is_some()
}

/// Whether the bytes hold an HDF5 signature where the format allows one (after a user block
/// of 0, 512, 1024 … bytes) within `head`.
pub fn is_hdf5(head: &[u8]) -> bool {
    [0usize, 512, 1024, 2048, 4096, 8192, 16384, 32768]
        .iter()
        .any(|&at| head.get(at..at + HDF5_MAGIC.len()) == Some(HDF5_MAGIC))
}

/// Where in the file an HDF5 signature is, looked for as libhdf5 does: at 0, then 512 and
/// every power of two after it, to the end of the file.
pub fn hdf5_offset<R: std::io::Read + std::io::Seek>(
    file: &mut R,
    size: u64,
) -> std::io::Result<Option<u64>> {
    let mut at = 0u64;
    let mut found = None;
    while at.saturating_add(HDF5_MAGIC.len() as u64) <= size {
        file.seek(std::io::SeekFrom::Start(at))?;
        let mut signature = [0u8; 8];
        file.read_exact(&mut signature)?;
        if signature == HDF5_MAGIC {
            found = Some(at);
            break;
        }
        at = if at == 0 { 512 } else { at.saturating_mul(2) };
    }
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok(found)
}

/// Whether the bytes start with a tar header: `ustar` at 257, or (old V7 archives, which
/// Python's tarfile also reads) a header whose checksum adds up.
pub fn is_tar(head: &[u8]) -> bool {
    let Some(header) = head.get(..512) else {
        return false;
    };
    if &header[257..262] == b"ustar" {
        return true;
    }
    let field: String = header[148..156].iter().map(|b| char::from(*b)).collect();
    let digits = field
        .trim_start_matches(' ')
        .split(['\0', ' '])
        .next()
        .unwrap_or_default();
    let Ok(stored) = u32::from_str_radix(digits, 8) else {
        return false;
    };
    let sum: u32 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    // An all-zero block is the end of an archive, not a header.
    stored == sum && header.iter().any(|b| *b != 0) && header[0] != 0
}

/// Whether the bytes start like a pickle (any protocol).
pub fn is_pickle(head: &[u8]) -> bool {
    match head {
        // Protocol 2+ starts with PROTO and the protocol number.
        [0x80, proto, ..] => *proto <= 5,
        // Protocols 0 and 1 start with an opcode such as MARK, GLOBAL or EMPTY_DICT.
        [first, ..] => b"(c]}NIFSVJKLUX".contains(first),
        [] => false,
    }
}

/// Whether an unpickler takes this byte as an opcode (protocols 0–5).
pub fn is_pickle_opcode(byte: u8) -> bool {
    matches!(byte, 0x80..=0x98) || b"().0123BCFGIJKLMNPQRSTUVXabcdeghijlopqrstu}]".contains(&byte)
}

/// Whether the bytes start with a pickle's PROTO opcode (protocol 2 or later).
pub fn is_pickle_protocol(head: &[u8]) -> bool {
    matches!(head, [0x80, 2..=5, ..])
}

/// Whether the bytes start like a safetensors file of `size` bytes.
pub fn is_safetensors(head: &[u8], size: u64) -> bool {
    let Some(len) = head.get(..8) else {
        return false;
    };
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(len);
    let header_len = u64::from_le_bytes(bytes);
    header_len >= 2 && header_len.saturating_add(8) <= size && head.get(8) == Some(&b'{')
}
