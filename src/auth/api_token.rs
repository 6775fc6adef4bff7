//! API token secrets: `mh_` and 32 random bytes; only their SHA-256 is stored, so a database
//! leak reveals no usable token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// The prefix that tells an API token from a JWT.
pub const PREFIX: &str = "mh_";

/// A freshly minted secret with what is stored of it.
pub struct NewSecret {
    /// The secret, shown to the user once.
    pub secret: String,
    /// Its SHA-256 (hex): the lookup key.
    pub hash: String,
    /// Its first characters, to recognise it in a list.
    pub display_prefix: String,
}

/// Mints a new API token secret.
pub fn generate() -> NewSecret {
    let bytes: [u8; 32] = rand::random();
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewSecret {
        hash: hash(&secret),
        display_prefix: secret.chars().take(10).collect(),
        secret,
    }
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
