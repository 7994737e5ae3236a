//! The opaque, tamper-evident pagination cursor.
//!
//! A cursor is `base64url(version ‖ last id ‖ HMAC-SHA256(version ‖ last id)[..16])`. It only
//! ever names a position in the users' key space: the store turns it into `id < last id`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::{Invalid, UserId};

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const PAYLOAD_LEN: usize = 1 + 16;
const CURSOR_LEN: usize = PAYLOAD_LEN + TAG_LEN;

/// The secret that signs cursors; every instance of the service must share it.
#[derive(Clone)]
pub struct CursorKey(Hmac<Sha256>);

impl CursorKey {
    pub const MIN_SECRET_LEN: usize = 32;

    pub fn new(secret: &[u8]) -> Result<Self, Invalid> {
        if secret.len() < Self::MIN_SECRET_LEN {
            return Err(Invalid("the cursor secret must be at least 32 bytes"));
        }
        Hmac::new_from_slice(secret)
            .map(Self)
            .map_err(|_| Invalid("the cursor secret is not a valid HMAC key"))
    }

    pub fn encode(&self, last: UserId) -> String {
        let mut raw = [0u8; CURSOR_LEN];
        raw[0] = VERSION;
        raw[1..PAYLOAD_LEN].copy_from_slice(&last.to_bytes());
        let tag = self.tag(&raw[..PAYLOAD_LEN]);
        raw[PAYLOAD_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(&self, cursor: &str) -> Result<UserId, Invalid> {
        const REFUSED: Invalid = Invalid("not a cursor this service issued");
        if cursor.len() > 64 {
            return Err(REFUSED);
        }
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| REFUSED)?;
        if raw.len() != CURSOR_LEN || raw[0] != VERSION {
            return Err(REFUSED);
        }
        let (payload, tag) = raw.split_at(PAYLOAD_LEN);
        let mut mac = self.0.clone();
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| REFUSED)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&payload[1..]);
        Ok(UserId::from_bytes(id))
    }

    fn tag(&self, payload: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn key(byte: u8) -> CursorKey {
        CursorKey::new(&[byte; 32]).expect("32 bytes")
    }

    #[test]
    fn round_trips() {
        let id = UserId::generate(SystemTime::now());
        let cursor = key(1).encode(id);
        assert_eq!(key(1).decode(&cursor), Ok(id));
    }

    #[test]
    fn refuses_tampered_truncated_foreign_and_made_up_cursors() {
        let id = UserId::generate(SystemTime::now());
        let cursor = key(1).encode(id);
        let mut flipped = cursor.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        for bad in [
            flipped.as_str(),
            &cursor[..cursor.len() - 1],
            &cursor[1..],
            "",
            "null",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "🦀",
            &format!("{cursor}{cursor}"),
        ] {
            assert!(key(1).decode(bad).is_err(), "{bad:?} accepted");
        }
        assert!(key(2).decode(&cursor).is_err());
    }

    #[test]
    fn refuses_short_secrets() {
        assert!(CursorKey::new(b"short").is_err());
    }
}
