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
    use proptest::prelude::*;
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

    /// Strings shaped like cursors, and some that are not.
    fn cursor_like() -> impl Strategy<Value = String> {
        let signed_shape = prop::collection::vec(any::<u8>(), CURSOR_LEN).prop_map(|mut raw| {
            raw[0] = VERSION;
            URL_SAFE_NO_PAD.encode(raw)
        });
        prop_oneof![any::<String>(), "[A-Za-z0-9_=+/-]{0,70}", signed_shape]
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn decodes_only_what_it_encoded(cursor in cursor_like()) {
            if let Ok(id) = key(1).decode(&cursor) {
                prop_assert_eq!(key(1).encode(id), cursor);
            }
        }

        #[test]
        fn any_changed_character_is_refused(
            id in any::<[u8; 16]>(),
            at in 0..44usize,
            by in "[A-Za-z0-9_-]",
        ) {
            let cursor = key(1).encode(UserId::from_bytes(id));
            prop_assert_eq!(key(1).decode(&cursor), Ok(UserId::from_bytes(id)));
            let changed = format!("{}{by}{}", &cursor[..at], &cursor[at + 1..]);
            prop_assume!(changed != cursor);
            prop_assert!(key(1).decode(&changed).is_err(), "{:?}", changed);
        }
    }
}
