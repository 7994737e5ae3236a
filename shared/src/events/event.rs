//! The contract's events (API.md, "Events"): what a change to a user is published as.

use serde_json::{Value, json};

use super::record::Change;
use crate::domain::UserId;

/// The `source` of every event.
pub const SOURCE: &str = "users-service";

/// One event, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    pub user_id: UserId,
    pub version: u64,
    pub detail_type: &'static str,
    /// `occurred_at`, also the entry's `Time`.
    pub occurred_at: String,
    /// The `detail`, as JSON text.
    pub detail: String,
}

impl DomainEvent {
    pub fn from_change(change: &Change) -> Self {
        let (user_id, version, detail_type, occurred_at, extra) = match change {
            Change::Created(user) => (
                user.id(),
                user.version().get(),
                "UserCreated",
                user.created_at().to_owned(),
                json!({ "user": user }),
            ),
            Change::Updated { user, changed } => (
                user.id(),
                user.version().get(),
                "UserUpdated",
                user.updated_at().to_owned(),
                json!({ "user": user, "changed": changed }),
            ),
            Change::Deleted { id, version, at } => {
                (*id, *version, "UserDeleted", at.clone(), json!({}))
            }
        };
        let mut detail = json!({
            "event_id": event_id(user_id, version),
            "occurred_at": occurred_at,
            "user_id": user_id.to_string(),
            "version": version,
        });
        if let (Some(detail), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            detail.extend(extra);
        }
        Self {
            user_id,
            version,
            detail_type,
            occurred_at,
            detail: detail.to_string(),
        }
    }

    /// The event's `event_id`.
    pub fn event_id(&self) -> String {
        event_id(self.user_id, self.version)
    }

    /// The entry's size as EventBridge counts it against a `PutEvents` call's 256 KB: `Time`
    /// (14 bytes), `Source`, `DetailType` and `Detail` in UTF-8.
    pub fn entry_size(&self) -> usize {
        14 + SOURCE.len() + self.detail_type.len() + self.detail.len()
    }
}

/// One change of one user, named by the user and the version it made: the same whichever
/// stream record, retry, bisection or re-read of the stream carries it, so consumers
/// deduplicate on it, and it can be told from the user's `etag` (`"v<version>"`).
pub fn event_id(user_id: UserId, version: u64) -> String {
    format!("{user_id}-v{version}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, NewUser, User, UserName, UserPatch};
    use std::time::{Duration, SystemTime};

    fn detail(event: &DomainEvent) -> Value {
        serde_json::from_str(&event.detail).expect("JSON")
    }

    #[test]
    fn each_change_has_the_contract_s_detail() {
        let user = User::create(
            NewUser {
                name: UserName::parse("Ada").expect("valid"),
                email: Email::parse("ada@example.com").expect("valid"),
            },
            SystemTime::now(),
        );
        let created = DomainEvent::from_change(&Change::Created(user.clone()));
        let d = detail(&created);
        assert_eq!(created.detail_type, "UserCreated");
        assert_eq!(d["event_id"], format!("{}-v1", user.id()));
        assert_eq!(d["occurred_at"], user.created_at());
        assert_eq!(d["version"], 1);
        assert_eq!(d["user"]["email"], "ada@example.com");
        assert_eq!(d.as_object().map(|o| o.len()), Some(5));

        let patch = UserPatch::new(UserName::parse("Grace").ok(), None).expect("a field");
        let renamed = user
            .patched(&patch, SystemTime::now() + Duration::from_secs(1))
            .expect("a change");
        let updated = DomainEvent::from_change(&Change::Updated {
            user: renamed.clone(),
            changed: vec!["name"],
        });
        let d = detail(&updated);
        assert_eq!(
            (d["version"].clone(), d["changed"].clone()),
            (json!(2), json!(["name"]))
        );
        assert_eq!(d["occurred_at"], renamed.updated_at());

        let deleted = DomainEvent::from_change(&Change::Deleted {
            id: user.id(),
            version: 3,
            at: "2026-01-01T00:00:00Z".into(),
        });
        let d = detail(&deleted);
        assert_eq!(deleted.detail_type, "UserDeleted");
        assert_eq!(d.as_object().map(|o| o.len()), Some(4));
        assert!(!deleted.detail.contains("Ada") && !deleted.detail.contains("example.com"));
        assert_eq!(deleted.event_id(), format!("{}-v3", user.id()));
    }
}
