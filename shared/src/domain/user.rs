use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

use super::{Email, Invalid, UserId, UserName};

/// A validated request to create a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: UserName,
    pub email: Email,
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
}

impl User {
    /// Assigns an id and creation time to a new user.
    pub fn create(new: NewUser, now: SystemTime) -> Self {
        let id = UserId::generate(now);
        Self {
            created_at: rfc3339_millis(id.timestamp())
                .expect("the clock reads a year before 10000"),
            id,
            name: new.name,
            email: new.email,
        }
    }

    /// Rebuilds a user from stored fields, checking each again.
    pub fn restore(id: &str, name: &str, email: &str, created_at: &str) -> Result<Self, Invalid> {
        let id = UserId::parse(id)?;
        if rfc3339_millis(id.timestamp()).as_deref() != Some(created_at) {
            return Err(Invalid("created_at does not match the id"));
        }
        Ok(Self {
            id,
            name: UserName::parse(name)?,
            email: Email::parse(email)?,
            created_at: created_at.to_owned(),
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
}

/// `None` past the year 9999, which a ULID can encode but this format cannot.
fn rfc3339_millis(at: SystemTime) -> Option<String> {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let nanos = at.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::try_from(nanos).ok()?).ok()?;
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

    #[test]
    fn created_at_is_the_id_instant_in_rfc3339_millis() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_428_930_123);
        let user = User::create(ada(), at);
        assert_eq!(user.created_at(), "2026-11-23T10:15:30.123Z");
        let json = serde_json::to_value(&user).expect("serializes");
        assert_eq!(json["id"], user.id().to_string());
        assert_eq!(json["name"], "Ada Lovelace");
        assert_eq!(json["email"], "ada@example.com");
        assert_eq!(json.as_object().map(|o| o.len()), Some(4));
    }

    #[test]
    fn restore_checks_every_field() {
        let user = User::create(ada(), SystemTime::now());
        let id = user.id().to_string();
        let restored = User::restore(&id, "Ada Lovelace", "ada@example.com", user.created_at());
        assert_eq!(restored, Ok(user.clone()));
        assert!(User::restore(&id, "Ada", "ada@example.com", "2020-01-01T00:00:00.000Z").is_err());
        assert!(User::restore(&id, "", "ada@example.com", user.created_at()).is_err());
        let far_future = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";
        assert!(
            User::restore(
                far_future,
                "Ada",
                "ada@example.com",
                "10889-08-02T05:31:50.655Z"
            )
            .is_err()
        );
    }
}
