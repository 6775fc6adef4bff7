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
/// of 0, 512, 1024 … bytes).
pub fn is_hdf5(head: &[u8]) -> bool {
    [0usize, 512, 1024, 2048, 4096, 8192, 16384, 32768]
        .iter()
        .any(|&at| head.get(at..at + HDF5_MAGIC.len()) == Some(HDF5_MAGIC))
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
