//! Idempotency keys: a retried create returns the original `201` instead of a second user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// A create's idempotency key, with what scopes and fingerprints it.
#[derive(Debug, Clone, Copy)]
pub struct Idempotent<'a> {
    pub key: &'a IdempotencyKey,
    /// The caller's principal, when an authorizer names one: keys are scoped to it.
    pub caller: Option<&'a str>,
    /// The decoded body: a retry must send the same bytes.
    pub body: &'a [u8],
}

/// The record a create with an idempotency key writes in the same transaction as its user,
/// so that the key is taken exactly when the user is created: one round trip, and nothing to
/// release when the create fails.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The key, scoped to the caller, as stored.
    pub scoped_key: String,
    /// SHA-256 of the decoded body: a retry must send the same bytes.
    pub fingerprint: String,
    /// The user this request creates.
    pub user: UserId,
    pub now: SystemTime,
}

impl ClaimRequest {
    pub fn new(request: Idempotent<'_>, user: UserId, now: SystemTime) -> Self {
        let scope = request
            .caller
            .map_or_else(|| "anonymous".to_owned(), |sub| hex(&Sha256::digest(sub)));
        Self {
            scoped_key: format!("{scope}#{}", request.key.as_str()),
            fingerprint: hex(&Sha256::digest(request.body)),
            user,
            now,
        }
    }

    /// When the record stops counting.
    pub fn expires_at(&self) -> SystemTime {
        self.now + RETENTION
    }

    /// The time as the record's write compares it with a stored `in_flight_until`: whole
    /// milliseconds since the epoch. [`decide`] compares in the same units, so that both agree
    /// on when a record stops counting.
    pub fn now_millis(&self) -> u64 {
        self.now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The time as the record's write compares it with a stored `expires_at`: whole seconds.
    pub fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }
}

/// What a create whose key is held by a record gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The record is this request's own: its write landed, though its answer was lost.
    Claimed,
    /// The key completed earlier for this user; `same_body` says whether with this body.
    Completed { user: UserId, same_body: bool },
    /// The first request with this key is still running.
    InProgress { retry_after: Duration },
    /// The key was used with a different body by a request still running.
    Reused,
}

/// Whether a stored record's request is still running or has created its user. Records are
/// written completed, with their user; `in_progress` ones are written by the earlier release
/// of this service (a claim taken before the create), which may serve beside this one while a
/// deployment shifts traffic, and are honoured until their deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    InProgress,
    Completed,
}

/// An idempotency record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    pub fingerprint: String,
    pub state: ClaimState,
    pub user: UserId,
    /// When an `in_progress` record stops blocking its key.
    pub in_flight_until: SystemTime,
    /// When the record stops counting, whether or not DynamoDB's TTL has deleted it yet.
    pub expires_at: SystemTime,
}

/// What a create that found a record in its way does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The record is gone, expired or a dead request's: try to take the key again.
    TakeOver,
    /// The record is final for this request.
    Answer(ClaimOutcome),
}

/// Decides, from the record that blocked a create (`None` if it vanished since), what the
/// creating request gets.
pub fn decide(record: Option<&ClaimRecord>, request: &ClaimRequest) -> Decision {
    // In the units the record's write compares, or a record the write refuses could be decided
    // expired again and again.
    let now_s = UNIX_EPOCH + Duration::from_secs(request.now_secs());
    let now_ms = UNIX_EPOCH + Duration::from_millis(request.now_millis());
    let Some(record) = record.filter(|r| r.expires_at >= now_s) else {
        return Decision::TakeOver;
    };
    if record.user == request.user {
        return Decision::Answer(ClaimOutcome::Claimed);
    }
    let same_body = record.fingerprint == request.fingerprint;
    Decision::Answer(match record.state {
        ClaimState::Completed => ClaimOutcome::Completed {
            user: record.user,
            same_body,
        },
        ClaimState::InProgress if record.in_flight_until < now_ms => {
            return Decision::TakeOver;
        }
        ClaimState::InProgress if !same_body => ClaimOutcome::Reused,
        ClaimState::InProgress => {
            let wait = record
                .in_flight_until
                .duration_since(request.now)
                .unwrap_or_default();
            let seconds = wait.as_millis().div_ceil(1000).max(1);
            ClaimOutcome::InProgress {
                retry_after: Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX)),
            }
        }
    })
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

    fn request(key: &IdempotencyKey, caller: Option<&str>, body: &[u8]) -> ClaimRequest {
        let now = SystemTime::now();
        let idempotent = Idempotent { key, caller, body };
        ClaimRequest::new(idempotent, UserId::generate(now), now)
    }

    #[test]
    fn scopes_keys_to_the_caller_and_fingerprints_the_body() {
        let key = IdempotencyKey::parse(b"k#1").expect("valid");
        let anonymous = request(&key, None, b"{}");
        let alice = request(&key, Some("alice"), b"{}");
        let bob = request(&key, Some("bob"), b"{ }");
        assert_eq!(anonymous.scoped_key, "anonymous#k#1");
        assert_ne!(alice.scoped_key, bob.scoped_key);
        assert!(alice.scoped_key.ends_with("#k#1"));
        assert_ne!(alice.fingerprint, bob.fingerprint);
        assert_eq!(anonymous.fingerprint, alice.fingerprint);
    }

    fn record(request: &ClaimRequest, state: ClaimState) -> ClaimRecord {
        ClaimRecord {
            fingerprint: request.fingerprint.clone(),
            state,
            user: UserId::generate(request.now),
            in_flight_until: request.now + Duration::from_millis(2500),
            expires_at: request.now + RETENTION,
        }
    }

    fn answer(decision: Decision) -> ClaimOutcome {
        match decision {
            Decision::Answer(outcome) => outcome,
            Decision::TakeOver => panic!("took over"),
        }
    }

    #[test]
    fn a_completed_record_names_its_user_and_whether_the_body_is_the_same() {
        let key = IdempotencyKey::parse(b"k").expect("valid");
        let mine = request(&key, None, b"{}");
        let completed = record(&mine, ClaimState::Completed);
        let outcome = answer(decide(Some(&completed), &mine));
        assert_eq!(
            outcome,
            ClaimOutcome::Completed {
                user: completed.user,
                same_body: true
            }
        );
        let other_body = request(&key, None, b"{ }");
        let outcome = answer(decide(Some(&completed), &other_body));
        assert_eq!(
            outcome,
            ClaimOutcome::Completed {
                user: completed.user,
                same_body: false
            }
        );
    }

    #[test]
    fn a_running_request_blocks_its_key_until_its_deadline() {
        let key = IdempotencyKey::parse(b"k").expect("valid");
        let mine = request(&key, None, b"{}");
        let running = record(&mine, ClaimState::InProgress);
        let retry_after = Duration::from_secs(3);
        assert_eq!(
            answer(decide(Some(&running), &mine)),
            ClaimOutcome::InProgress { retry_after }
        );
        let other_body = request(&key, None, b"[]");
        assert_eq!(
            answer(decide(Some(&running), &other_body)),
            ClaimOutcome::Reused
        );
        let own = ClaimRecord {
            user: mine.user,
            ..running.clone()
        };
        assert_eq!(answer(decide(Some(&own), &mine)), ClaimOutcome::Claimed);
        let dead = ClaimRecord {
            in_flight_until: mine.now - Duration::from_millis(1),
            ..running
        };
        assert_eq!(decide(Some(&dead), &mine), Decision::TakeOver);
    }

    #[test]
    fn a_missing_or_expired_record_frees_the_key() {
        let key = IdempotencyKey::parse(b"k").expect("valid");
        let mine = request(&key, None, b"{}");
        assert_eq!(decide(None, &mine), Decision::TakeOver);
        let expired = ClaimRecord {
            expires_at: mine.now - Duration::from_secs(1),
            ..record(&mine, ClaimState::Completed)
        };
        assert_eq!(decide(Some(&expired), &mine), Decision::TakeOver);
    }

    #[test]
    fn a_record_holds_its_key_as_long_as_the_write_would_refuse_it() {
        // The write compares whole seconds: a record expiring within this second still holds
        // its key, and one in flight until this millisecond still runs.
        let key = IdempotencyKey::parse(b"k").expect("valid");
        let mine = request(&key, None, b"{}");
        let since_epoch = mine.now.duration_since(UNIX_EPOCH).expect("after 1970");
        let expiring = ClaimRecord {
            expires_at: UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()),
            ..record(&mine, ClaimState::Completed)
        };
        assert!(matches!(
            decide(Some(&expiring), &mine),
            Decision::Answer(_)
        ));
        let millis = u64::try_from(since_epoch.as_millis()).expect("in range");
        let ending = ClaimRecord {
            in_flight_until: UNIX_EPOCH + Duration::from_millis(millis),
            ..record(&mine, ClaimState::InProgress)
        };
        assert!(matches!(decide(Some(&ending), &mine), Decision::Answer(_)));
    }
}
