//! Idempotency keys: a retried create returns the original `201` instead of a second user.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::domain::{Invalid, UserId};

/// How long a completed request is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The `idempotency-key` header: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, Invalid> {
        let printable = raw.iter().all(|b| (0x20..=0x7e).contains(b));
        if raw.is_empty() || raw.len() > 128 || !printable {
            return Err(Invalid("must be 1 to 128 printable ASCII characters"));
        }
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a create with an idempotency key asks the store for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The key, scoped to the caller, as stored.
    pub scoped_key: String,
    /// SHA-256 of the decoded body: a retry must send the same bytes.
    pub fingerprint: String,
    /// The user this request will create; it also identifies the claim's holder.
    pub user: UserId,
    /// When an unfinished claim stops blocking the key: the invocation's deadline.
    pub in_flight_until: SystemTime,
    pub now: SystemTime,
}

impl ClaimRequest {
    /// `caller` is the authorizer's subject, when there is one.
    pub fn new(
        key: &IdempotencyKey,
        caller: Option<&str>,
        body: &[u8],
        user: UserId,
        in_flight_until: SystemTime,
        now: SystemTime,
    ) -> Self {
        let scope = caller.map_or_else(|| "anonymous".to_owned(), |sub| hex(&Sha256::digest(sub)));
        Self {
            scoped_key: format!("{scope}#{}", key.as_str()),
            fingerprint: hex(&Sha256::digest(body)),
            user,
            in_flight_until,
            now,
        }
    }

    pub fn claim(&self) -> Claim {
        Claim {
            scoped_key: self.scoped_key.clone(),
            user: self.user,
        }
    }
}

/// A key this request holds until it completes or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub scoped_key: String,
    /// The user the holder creates: only the holder can complete or release the claim.
    pub user: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    /// The key completed earlier with the same body: answer with this user.
    Replay(UserId),
    /// The first request with this key is still running.
    InProgress {
        retry_after: Duration,
    },
    /// The key was used with a different body.
    Reused,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_128() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 128]).is_ok());
        assert!(IdempotencyKey::parse(b"with space ~").is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 129],
            b"tab\there",
            b"caf\xc3\xa9",
            b"nul\0",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn scopes_keys_to_the_caller_and_fingerprints_the_body() {
        let key = IdempotencyKey::parse(b"k#1").expect("valid");
        let now = SystemTime::now();
        let user = UserId::generate(now);
        let anonymous = ClaimRequest::new(&key, None, b"{}", user, now, now);
        let alice = ClaimRequest::new(&key, Some("alice"), b"{}", user, now, now);
        let bob = ClaimRequest::new(&key, Some("bob"), b"{ }", user, now, now);
        assert_eq!(anonymous.scoped_key, "anonymous#k#1");
        assert_ne!(alice.scoped_key, bob.scoped_key);
        assert!(alice.scoped_key.ends_with("#k#1"));
        assert_ne!(alice.fingerprint, bob.fingerprint);
        assert_eq!(anonymous.fingerprint, alice.fingerprint);
    }
}
