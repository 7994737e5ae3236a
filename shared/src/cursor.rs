//! The opaque, tamper-evident pagination cursor.
//!
//! A cursor is `base64url(2 ‖ key id ‖ last id ‖ HMAC-SHA256(2 ‖ key id ‖ last id)[..16])`. It
//! only ever names a position in the users' key space: the store turns it into `id < last id`.
//!
//! Keys rotate: cursors are signed with the current key and name it by its id, and a cursor
//! signed with the previous key is still accepted, so a rotation never breaks a listing in
//! progress. A key's id is derived from the key itself, so no two keys need to be told apart by
//! hand. Cursors of the first format (`1 ‖ last id ‖ tag`, no key id) are accepted from either
//! key, so that cursors issued before key ids existed keep working.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::{Invalid, UserId};

const VERSION: u8 = 2;
const UNKEYED_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const TAG_LEN: usize = 16;
const ID_LEN: usize = 16;
const PAYLOAD_LEN: usize = 1 + KEY_ID_LEN + ID_LEN;
const CURSOR_LEN: usize = PAYLOAD_LEN + TAG_LEN;
const UNKEYED_PAYLOAD_LEN: usize = 1 + ID_LEN;
const UNKEYED_CURSOR_LEN: usize = UNKEYED_PAYLOAD_LEN + TAG_LEN;

/// One secret that signs or checks cursors, with its id.
#[derive(Clone)]
struct SigningKey {
    id: [u8; KEY_ID_LEN],
    mac: Hmac<Sha256>,
}

impl SigningKey {
    fn new(secret: &[u8]) -> Result<Self, Invalid> {
        if secret.len() < CursorKey::MIN_SECRET_LEN {
            return Err(Invalid("the cursor secret must be at least 32 bytes"));
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| Invalid("the cursor secret is not a valid HMAC key"))?;
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&tag(&mac, b"cursor key id")[..KEY_ID_LEN]);
        Ok(Self { id, mac })
    }

    fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.verify_truncated_left(signature).is_ok()
    }
}

/// The keys that sign and check cursors; every instance of the service must share them.
#[derive(Clone)]
pub struct CursorKey {
    current: SigningKey,
    previous: Option<SigningKey>,
}

impl CursorKey {
    pub const MIN_SECRET_LEN: usize = 32;

    /// Signs and checks cursors with `secret` alone.
    pub fn new(secret: &[u8]) -> Result<Self, Invalid> {
        Ok(Self {
            current: SigningKey::new(secret)?,
            previous: None,
        })
    }

    /// Also accepts the cursors that `secret`, the key before the current one, signed.
    pub fn with_previous(self, secret: &[u8]) -> Result<Self, Invalid> {
        Ok(Self {
            previous: Some(SigningKey::new(secret)?),
            ..self
        })
    }

    pub fn encode(&self, last: UserId) -> String {
        let mut raw = [0u8; CURSOR_LEN];
        raw[0] = VERSION;
        raw[1..=KEY_ID_LEN].copy_from_slice(&self.current.id);
        raw[1 + KEY_ID_LEN..PAYLOAD_LEN].copy_from_slice(&last.to_bytes());
        let signature = tag(&self.current.mac, &raw[..PAYLOAD_LEN]);
        raw[PAYLOAD_LEN..].copy_from_slice(&signature[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(&self, cursor: &str) -> Result<UserId, Invalid> {
        const REFUSED: Invalid = Invalid("not a cursor this service issued");
        if cursor.len() > 64 {
            return Err(REFUSED);
        }
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| REFUSED)?;
        let id = match (raw.first(), raw.len()) {
            (Some(&VERSION), CURSOR_LEN) => {
                let (payload, signature) = raw.split_at(PAYLOAD_LEN);
                let key_id = &payload[1..=KEY_ID_LEN];
                let key = self.keys().find(|key| key.id == key_id).ok_or(REFUSED)?;
                if !key.verifies(payload, signature) {
                    return Err(REFUSED);
                }
                &payload[1 + KEY_ID_LEN..]
            }
            (Some(&UNKEYED_VERSION), UNKEYED_CURSOR_LEN) => {
                let (payload, signature) = raw.split_at(UNKEYED_PAYLOAD_LEN);
                if !self.keys().any(|key| key.verifies(payload, signature)) {
                    return Err(REFUSED);
                }
                &payload[1..]
            }
            _ => return Err(REFUSED),
        };
        let mut bytes = [0u8; ID_LEN];
        bytes.copy_from_slice(id);
        Ok(UserId::from_bytes(bytes))
    }

    fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

fn tag(mac: &Hmac<Sha256>, payload: &[u8]) -> [u8; 32] {
    let mut mac = mac.clone();
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::SystemTime;

    fn key(byte: u8) -> CursorKey {
        CursorKey::new(&[byte; 32]).expect("32 bytes")
    }

    /// Key `current`, still accepting what key `previous` signed.
    fn rotated(current: u8, previous: u8) -> CursorKey {
        key(current)
            .with_previous(&[previous; 32])
            .expect("32 bytes")
    }

    /// A cursor of the first format, without a key id, as the service issued them before.
    fn unkeyed(secret: u8, last: UserId) -> String {
        let mac = Hmac::<Sha256>::new_from_slice(&[secret; 32]).expect("a key");
        let mut raw = vec![UNKEYED_VERSION];
        raw.extend_from_slice(&last.to_bytes());
        let signature = tag(&mac, &raw);
        raw.extend_from_slice(&signature[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
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
        assert!(key(1).with_previous(b"short").is_err());
    }

    #[test]
    fn a_rotation_keeps_the_previous_keys_cursors_and_signs_with_the_new_one() {
        let id = UserId::generate(SystemTime::now());
        let before = key(1).encode(id);
        let after_rotation = rotated(2, 1);
        assert_eq!(after_rotation.decode(&before), Ok(id));
        let issued = after_rotation.encode(id);
        assert_eq!(
            key(2).decode(&issued),
            Ok(id),
            "signed with the current key"
        );
        assert!(key(1).decode(&issued).is_err());
        // The next rotation drops key 1, and with it the cursors it signed.
        let next = rotated(3, 2);
        assert_eq!(next.decode(&issued), Ok(id));
        assert!(next.decode(&before).is_err());
    }

    #[test]
    fn a_cursor_names_the_key_that_signed_it() {
        let id = UserId::generate(SystemTime::now());
        let cursor = key(1).encode(id);
        let raw = URL_SAFE_NO_PAD.decode(&cursor).expect("base64url");
        assert_eq!(raw.len(), CURSOR_LEN);
        assert_eq!(
            &raw[1..=KEY_ID_LEN],
            &SigningKey::new(&[1; 32]).expect("a key").id
        );
        assert_ne!(
            SigningKey::new(&[1; 32]).expect("a key").id,
            SigningKey::new(&[2; 32]).expect("a key").id
        );
        // Another key's id on a cursor signed with this one is refused, whoever holds it.
        let mut renamed = raw.clone();
        renamed[1..=KEY_ID_LEN].copy_from_slice(&SigningKey::new(&[2; 32]).expect("a key").id);
        assert!(
            rotated(1, 2)
                .decode(&URL_SAFE_NO_PAD.encode(renamed))
                .is_err()
        );
    }

    #[test]
    fn cursors_without_a_key_id_are_accepted_from_either_key() {
        let id = UserId::generate(SystemTime::now());
        assert_eq!(key(1).decode(&unkeyed(1, id)), Ok(id));
        assert_eq!(rotated(2, 1).decode(&unkeyed(1, id)), Ok(id));
        assert_eq!(rotated(2, 1).decode(&unkeyed(2, id)), Ok(id));
        assert!(rotated(3, 2).decode(&unkeyed(1, id)).is_err());
    }

    /// Strings shaped like cursors, and some that are not.
    fn cursor_like() -> impl Strategy<Value = String> {
        let signed_shape = prop::collection::vec(any::<u8>(), CURSOR_LEN).prop_map(|mut raw| {
            raw[0] = VERSION;
            URL_SAFE_NO_PAD.encode(raw)
        });
        let unkeyed_shape =
            prop::collection::vec(any::<u8>(), UNKEYED_CURSOR_LEN).prop_map(|mut raw| {
                raw[0] = UNKEYED_VERSION;
                URL_SAFE_NO_PAD.encode(raw)
            });
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_=+/-]{0,70}",
            signed_shape,
            unkeyed_shape
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn decodes_only_what_it_encoded(cursor in cursor_like()) {
            let keys = rotated(1, 2);
            if let Ok(id) = keys.decode(&cursor) {
                let issued = [keys.encode(id), key(2).encode(id), unkeyed(1, id), unkeyed(2, id)];
                prop_assert!(issued.contains(&cursor), "{:?}", cursor);
            }
        }

        #[test]
        fn any_changed_character_is_refused(
            id in any::<[u8; 16]>(),
            at in 0..50usize,
            by in "[A-Za-z0-9_-]",
        ) {
            let keys = rotated(1, 2);
            let cursor = key(2).encode(UserId::from_bytes(id));
            prop_assert_eq!(keys.decode(&cursor), Ok(UserId::from_bytes(id)));
            let changed = format!("{}{by}{}", &cursor[..at], &cursor[at + 1..]);
            prop_assume!(changed != cursor);
            prop_assert!(keys.decode(&changed).is_err(), "{:?}", changed);
        }
    }
}
