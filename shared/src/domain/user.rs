use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

use super::{Email, Invalid, UserId, UserName, Version};

/// A validated request to create a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: UserName,
    pub email: Email,
}

/// A validated change to a user: the fields it names, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPatch {
    name: Option<UserName>,
    email: Option<Email>,
}

impl UserPatch {
    /// `None` when the patch names no field.
    pub fn new(name: Option<UserName>, email: Option<Email>) -> Option<Self> {
        (name.is_some() || email.is_some()).then_some(Self { name, email })
    }

    /// The new name, when the patch names nothing else: a change that needs nothing of the
    /// stored user but its version and name, which one conditional write can check.
    pub fn name_only(&self) -> Option<&UserName> {
        self.name.as_ref().filter(|_| self.email.is_none())
    }
}

/// A stored user. Its `created_at` is the instant encoded in its id, to the millisecond.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    #[serde(serialize_with = "serialize_display")]
    id: UserId,
    #[serde(serialize_with = "serialize_name")]
    name: UserName,
    #[serde(serialize_with = "serialize_email")]
    email: Email,
    created_at: String,
    updated_at: String,
    #[serde(skip)]
    version: Version,
    /// The idempotency record of the create that made this user, if any: erasing the user
    /// erases it too.
    #[serde(skip)]
    created_by: Option<String>,
}

/// A user's fields as stored, to be restored into a [`User`].
#[derive(Debug, Clone, Copy)]
pub struct StoredUser<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub created_at: &'a str,
    /// Absent on users stored before updates existed: then `created_at`.
    pub updated_at: Option<&'a str>,
    /// Absent on users stored before updates existed: then the first version.
    pub version: Option<u64>,
    pub created_by: Option<&'a str>,
}

impl User {
    /// Assigns an id and creation time to a new user; `created_by` is the idempotency record
    /// of the request, if it carried a key.
    pub fn create(new: NewUser, now: SystemTime) -> Self {
        let id = UserId::generate(now);
        let created_at =
            rfc3339_millis(id.timestamp()).expect("the clock reads a year before 10000");
        Self {
            updated_at: created_at.clone(),
            created_at,
            id,
            name: new.name,
            email: new.email,
            version: Version::FIRST,
            created_by: None,
        }
    }

    /// The same new user, recorded as made by the create that holds `idempotency_record`.
    #[must_use]
    pub fn created_by(mut self, idempotency_record: &str) -> Self {
        self.created_by = Some(idempotency_record.to_owned());
        self
    }

    /// Rebuilds a user from stored fields. The key fields (id, times) must hold together; a
    /// name or email that today's rules would refuse is kept as stored, and logged (by id only),
    /// so that a rule tightened later never makes a stored user unreadable.
    pub fn restore(stored: StoredUser<'_>) -> Result<Self, Invalid> {
        let id = UserId::parse(stored.id)?;
        if rfc3339_millis(id.timestamp()).as_deref() != Some(stored.created_at) {
            return Err(Invalid("created_at does not match the id"));
        }
        let updated_at = stored.updated_at.unwrap_or(stored.created_at);
        // Both are written in one fixed-width form, so their text orders them.
        if updated_at.len() != stored.created_at.len() || updated_at < stored.created_at {
            return Err(Invalid("updated_at is not a time after created_at"));
        }
        let name = UserName::parse(stored.name).unwrap_or_else(|problem| {
            tracing::warn!(%id, %problem, "a stored name breaks today's rules");
            UserName::stored(stored.name)
        });
        let email = Email::parse(stored.email).unwrap_or_else(|problem| {
            tracing::warn!(%id, %problem, "a stored email breaks today's rules");
            Email::stored(stored.email)
        });
        Ok(Self {
            id,
            name,
            email,
            created_at: stored.created_at.to_owned(),
            updated_at: updated_at.to_owned(),
            version: stored.version.map_or(Version::FIRST, Version::new),
            created_by: stored.created_by.map(str::to_owned),
        })
    }

    /// The user with `patch` applied at `now`, as its next version; `None` when the patch
    /// changes nothing. A change of the email's case alone is a change.
    pub fn patched(&self, patch: &UserPatch, now: SystemTime) -> Option<Self> {
        let name = patch.name.as_ref().filter(|name| *name != &self.name);
        let email = patch.email.as_ref().filter(|email| *email != &self.email);
        if name.is_none() && email.is_none() {
            return None;
        }
        // Never before the previous change, whatever the clock of this instance says.
        let updated_at = rfc3339_millis(now)
            .filter(|now| *now > self.updated_at)
            .unwrap_or_else(|| self.updated_at.clone());
        Some(Self {
            name: name.unwrap_or(&self.name).clone(),
            email: email.unwrap_or(&self.email).clone(),
            updated_at,
            version: self.version.next(),
            ..self.clone()
        })
    }

    pub fn id(&self) -> UserId {
        self.id
    }

    pub fn name(&self) -> &UserName {
        &self.name
    }

    pub fn email(&self) -> &Email {
        &self.email
    }

    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    pub fn updated_at(&self) -> &str {
        &self.updated_at
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn etag(&self) -> String {
        self.version.etag()
    }

    pub fn idempotency_record(&self) -> Option<&str> {
        self.created_by.as_deref()
    }
}

/// The time of a change made at `now`, as stored and shown: RFC 3339 to the millisecond, in
/// UTC, fixed-width, so that its text orders it. `None` past the year 9999.
pub fn change_time(now: SystemTime) -> Option<String> {
    rfc3339_millis(now)
}

/// `None` past the year 9999, which a ULID can encode but this format cannot.
fn rfc3339_millis(at: SystemTime) -> Option<String> {
    let nanos = at.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::try_from(nanos).ok()?).ok()?;
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.format(format).ok()
}

fn serialize_display<S: serde::Serializer>(id: &UserId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn serialize_name<S: serde::Serializer>(name: &UserName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name.as_str())
}

fn serialize_email<S: serde::Serializer>(email: &Email, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(email.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ada() -> NewUser {
        NewUser {
            name: UserName::parse("Ada Lovelace").expect("valid"),
            email: Email::parse("ada@example.com").expect("valid"),
        }
    }

    fn stored<'a>(user: &'a User, id: &'a str) -> StoredUser<'a> {
        StoredUser {
            id,
            name: user.name().as_str(),
            email: user.email().as_str(),
            created_at: user.created_at(),
            updated_at: Some(user.updated_at()),
            version: Some(user.version().get()),
            created_by: user.idempotency_record(),
        }
    }

    #[test]
    fn created_at_is_the_id_instant_in_rfc3339_millis() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_428_930_123);
        let user = User::create(ada(), at);
        assert_eq!(user.created_at(), "2026-11-23T10:15:30.123Z");
        assert_eq!(user.updated_at(), user.created_at());
        assert_eq!(user.etag(), "\"v1\"");
        let json = serde_json::to_value(&user).expect("serializes");
        assert_eq!(json["id"], user.id().to_string());
        assert_eq!(json["name"], "Ada Lovelace");
        assert_eq!(json["email"], "ada@example.com");
        assert_eq!(json["updated_at"], "2026-11-23T10:15:30.123Z");
        assert_eq!(json.as_object().map(|o| o.len()), Some(5));
    }

    #[test]
    fn restore_checks_every_field() {
        let user = User::create(ada(), SystemTime::now()).created_by("scope#key");
        let id = user.id().to_string();
        let fields = stored(&user, &id);
        assert_eq!(User::restore(fields), Ok(user.clone()));
        let legacy = StoredUser {
            updated_at: None,
            version: None,
            created_by: None,
            ..fields
        };
        let restored = User::restore(legacy).expect("a user stored before updates existed");
        assert_eq!(
            (restored.updated_at(), restored.version()),
            (user.created_at(), Version::FIRST)
        );
        for broken in [
            StoredUser {
                created_at: "2020-01-01T00:00:00.000Z",
                ..fields
            },
            StoredUser {
                updated_at: Some("2020-01-01T00:00:00.000Z"),
                ..fields
            },
            StoredUser {
                updated_at: Some("2099"),
                ..fields
            },
            StoredUser {
                id: "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
                created_at: "10889-08-02T05:31:50.655Z",
                ..fields
            },
        ] {
            assert!(User::restore(broken).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn a_stored_name_or_email_that_today_s_rules_refuse_stays_readable() {
        let user = User::create(ada(), SystemTime::now());
        let id = user.id().to_string();
        let long = "n".repeat(UserName::MAX_CHARS + 1);
        let stored = StoredUser {
            name: &long,
            email: "not an address",
            ..stored(&user, &id)
        };
        let restored = User::restore(stored).expect("still a user");
        assert_eq!(restored.name().as_str(), long);
        assert_eq!(restored.email().as_str(), "not an address");
    }

    #[test]
    fn a_patch_sets_only_what_it_names_and_moves_the_version_on_a_change() {
        let user = User::create(ada(), SystemTime::now());
        let later = SystemTime::now() + Duration::from_secs(5);
        let grace = UserPatch::new(UserName::parse("Grace").ok(), None).expect("a field");
        let renamed = user.patched(&grace, later).expect("a change");
        assert_eq!(renamed.name().as_str(), "Grace");
        assert_eq!(renamed.email(), user.email());
        assert_eq!(renamed.version(), user.version().next());
        assert!(renamed.updated_at() > user.updated_at());
        assert_eq!(renamed.created_at(), user.created_at());

        let same = UserPatch::new(
            UserName::parse("Ada Lovelace").ok(),
            Email::parse("ada@example.com").ok(),
        );
        assert_eq!(user.patched(&same.expect("fields"), later), None);
        let case = UserPatch::new(None, Email::parse("Ada@Example.com").ok()).expect("a field");
        assert_eq!(
            user.patched(&case, later)
                .map(|u| u.email().as_str().to_owned()),
            Some("Ada@Example.com".into())
        );
        assert_eq!(UserPatch::new(None, None), None);

        let earlier = SystemTime::now() - Duration::from_secs(3600);
        let skewed = user.patched(&grace, earlier).expect("a change");
        assert_eq!(
            skewed.updated_at(),
            user.updated_at(),
            "never before the last change"
        );
    }
}
