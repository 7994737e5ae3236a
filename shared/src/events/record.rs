//! A stream record as Lambda's event source mapping hands it over, read into the change it
//! stands for. Each record is read on its own, from raw JSON, so that one malformed record is
//! dead-lettered while the others are published: a typed batch would fail as a whole.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::domain::{User, UserId};
use crate::dynamodb::user_from_image;

/// The invocation's payload. Its records stay raw until each is read on its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<Value>,
}

/// What the stream says happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created(User),
    /// `changed`: the names of the fields the API shows that changed (`name`, `email`).
    Updated {
        user: User,
        changed: Vec<&'static str>,
    },
    /// `version` is the erased user's last version plus one: the erasure is a change too.
    /// `at`: the stream record's time, to the second.
    Deleted {
        id: UserId,
        version: u64,
        at: String,
    },
}

/// A record, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Where Lambda resumes if this record is reported as failed; `None` only for a record too
    /// broken to carry one.
    pub sequence_number: Option<String>,
    /// When the change was made, as the stream tells it (`ApproximateCreationDateTime`); `None`
    /// when the record does not say.
    pub changed_at: Option<SystemTime>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Change(Change),
    /// An item that is not a user (an email's reservation, say), or a write to a user that
    /// changed nothing the API shows: no event.
    Nothing,
    Malformed(Malformed),
}

/// A record that cannot become an event, with what can be told of it without personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub reason: String,
    pub stream_event_id: Option<String>,
    pub event_name: Option<String>,
    pub user_id: Option<UserId>,
    /// The record itself, for a user's create or change only: the dead-letter queue keeps a
    /// change, but never the personal data of an erased user.
    pub record: Option<Value>,
}

const USER_PREFIX: &str = "USER#";

impl Record {
    pub fn read(raw: &Value) -> Self {
        let change = &raw["dynamodb"];
        let sequence_number = change["SequenceNumber"].as_str().map(str::to_owned);
        let changed_at = change["ApproximateCreationDateTime"]
            .as_f64()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .and_then(|since_epoch| UNIX_EPOCH.checked_add(since_epoch));
        let event_name = raw["eventName"].as_str();
        let malformed = |reason: &str, user_id: Option<UserId>| {
            let keeps_record = user_id.is_some() && matches!(event_name, Some("INSERT" | "MODIFY"));
            Kind::Malformed(Malformed {
                reason: reason.to_owned(),
                stream_event_id: raw["eventID"].as_str().map(str::to_owned),
                event_name: event_name.map(str::to_owned),
                user_id,
                record: keeps_record.then(|| raw.clone()),
            })
        };
        let kind = match change["Keys"]["pk"]["S"].as_str() {
            None => malformed("the record has no string key pk", None),
            Some(pk) => match pk.strip_prefix(USER_PREFIX) {
                None => Kind::Nothing,
                Some(id) => match UserId::parse(id) {
                    Err(_) => malformed("the key names no valid user id", None),
                    Ok(id) => match read_change(id, event_name, change) {
                        Ok(Some(change)) => Kind::Change(change),
                        Ok(None) => Kind::Nothing,
                        Err(reason) => malformed(&reason, Some(id)),
                    },
                },
            },
        };
        Self {
            sequence_number,
            changed_at,
            kind,
        }
    }

    /// Whether the change was made more than `age` before `now`. A record that does not say
    /// when counts as older: its age cannot be told, and keeping it beats losing it.
    pub fn older_than(&self, age: Duration, now: SystemTime) -> bool {
        self.changed_at
            .is_none_or(|at| now.duration_since(at).is_ok_and(|elapsed| elapsed > age))
    }
}

fn read_change(
    id: UserId,
    event_name: Option<&str>,
    change: &Value,
) -> Result<Option<Change>, String> {
    match event_name {
        Some("INSERT") => Ok(Some(Change::Created(image_user(id, change, "NewImage")?))),
        Some("MODIFY") => {
            let old = image_user(id, change, "OldImage")?;
            let user = image_user(id, change, "NewImage")?;
            let mut changed = Vec::new();
            if user.name() != old.name() {
                changed.push("name");
            }
            if user.email() != old.email() {
                changed.push("email");
            }
            if user.version() > old.version() {
                Ok(Some(Change::Updated { user, changed }))
            } else if changed.is_empty() {
                Ok(None)
            } else {
                Err("the user changed without a new version".into())
            }
        }
        Some("REMOVE") => {
            let old = image(change, "OldImage")?;
            let version = match old.get("version") {
                None => 1,
                Some(AttributeValue::N(n)) => n
                    .parse::<u64>()
                    .map_err(|_| "the old image's version is not a whole number")?,
                Some(_) => return Err("the old image's version is not a number".into()),
            };
            let at = change["ApproximateCreationDateTime"]
                .as_f64()
                .and_then(rfc3339_seconds)
                .ok_or("the record has no valid ApproximateCreationDateTime")?;
            Ok(Some(Change::Deleted {
                id,
                version: version.saturating_add(1),
                at,
            }))
        }
        _ => Err("the record's eventName is not INSERT, MODIFY or REMOVE".into()),
    }
}

/// The user of an image, which must be the user the record's key names.
fn image_user(id: UserId, change: &Value, name: &str) -> Result<User, String> {
    let user = user_from_image(&image(change, name)?).map_err(|e| format!("{name}: {e}"))?;
    if user.id() != id {
        return Err(format!("{name} is another user's"));
    }
    Ok(user)
}

/// An image's string and number attributes, the only types a user's item holds.
fn image(change: &Value, name: &str) -> Result<HashMap<String, AttributeValue>, String> {
    let attributes: &Map<String, Value> = change[name]
        .as_object()
        .ok_or_else(|| format!("the record has no {name}"))?;
    Ok(attributes
        .iter()
        .filter_map(|(attribute, value)| {
            let value = match (value["S"].as_str(), value["N"].as_str()) {
                (Some(s), _) => AttributeValue::S(s.to_owned()),
                (_, Some(n)) => AttributeValue::N(n.to_owned()),
                _ => return None,
            };
            Some((attribute.clone(), value))
        })
        .collect())
}

/// `ApproximateCreationDateTime` (seconds since the epoch) as RFC 3339, to the second.
fn rfc3339_seconds(epoch_seconds: f64) -> Option<String> {
    if !epoch_seconds.is_finite() {
        return None;
    }
    // Whole seconds: the stream's time is only approximate, and the contract says so.
    let seconds = epoch_seconds.floor() as i64;
    let at = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "01JD3F5Q8K2X7V9M4T6B1N0C8R";

    fn user_image(version: u64, name: &str, email: &str) -> Value {
        json!({
            "pk": {"S": format!("USER#{ID}")},
            "id": {"S": ID},
            "name": {"S": name},
            "email": {"S": email},
            "created_at": {"S": "2024-11-20T00:22:21.715Z"},
            "updated_at": {"S": "2024-11-20T00:22:21.715Z"},
            "version": {"N": version.to_string()},
            "listing": {"S": "USER"}
        })
    }

    fn record(name: &str, pk: &str, new: Option<Value>, old: Option<Value>) -> Value {
        let mut change = json!({
            "ApproximateCreationDateTime": 1_732_062_200.9,
            "Keys": {"pk": {"S": pk}},
            "SequenceNumber": "100",
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(new) = new {
            change["NewImage"] = new;
        }
        if let Some(old) = old {
            change["OldImage"] = old;
        }
        json!({"eventID": "e1", "eventName": name, "dynamodb": change})
    }

    #[test]
    fn a_create_a_change_and_an_erasure_are_read_from_their_images() {
        let pk = format!("USER#{ID}");
        let created = Record::read(&record(
            "INSERT",
            &pk,
            Some(user_image(1, "Ada", "a@x.io")),
            None,
        ));
        assert!(
            matches!(created.kind, Kind::Change(Change::Created(ref u)) if u.name().as_str() == "Ada")
        );
        assert_eq!(created.sequence_number.as_deref(), Some("100"));
        let made = UNIX_EPOCH + Duration::from_secs_f64(1_732_062_200.9);
        assert_eq!(created.changed_at, Some(made));
        let minute = Duration::from_secs(60);
        assert!(created.older_than(minute, made + 2 * minute));
        assert!(!created.older_than(minute, made + minute / 2));
        // A clock behind the stream's: the change is young.
        assert!(!created.older_than(minute, made - minute));
        assert!(Record::read(&json!({})).older_than(minute, made));

        let renamed = Record::read(&record(
            "MODIFY",
            &pk,
            Some(user_image(2, "Grace", "a@x.io")),
            Some(user_image(1, "Ada", "a@x.io")),
        ));
        assert!(
            matches!(renamed.kind, Kind::Change(Change::Updated { ref changed, .. }) if changed == &["name"])
        );

        let erased = Record::read(&record(
            "REMOVE",
            &pk,
            None,
            Some(user_image(3, "Ada", "a@x.io")),
        ));
        assert_eq!(
            erased.kind,
            Kind::Change(Change::Deleted {
                id: UserId::parse(ID).expect("valid"),
                version: 4,
                at: "2024-11-20T00:23:20Z".into()
            })
        );
    }

    #[test]
    fn internal_items_and_writes_that_change_nothing_make_no_event() {
        let email = record(
            "INSERT",
            "EMAIL#a@x.io",
            Some(json!({"user_id": {"S": ID}})),
            None,
        );
        assert_eq!(Record::read(&email).kind, Kind::Nothing);
        let pk = format!("USER#{ID}");
        let same = user_image(2, "Ada", "a@x.io");
        let untouched = Record::read(&record("MODIFY", &pk, Some(same.clone()), Some(same)));
        assert_eq!(untouched.kind, Kind::Nothing);
    }

    #[test]
    fn a_malformed_record_keeps_no_personal_data_of_an_erasure() {
        let pk = format!("USER#{ID}");
        let mut broken = user_image(1, "Ada", "a@x.io");
        broken["created_at"] = json!({"S": "yesterday"});
        let Kind::Malformed(insert) =
            Record::read(&record("INSERT", &pk, Some(broken.clone()), None)).kind
        else {
            panic!("malformed");
        };
        assert!(insert.record.is_some());
        let Kind::Malformed(remove) = Record::read(&record(
            "REMOVE",
            &pk,
            None,
            Some(json!({"version": {"S": "x"}})),
        ))
        .kind
        else {
            panic!("malformed");
        };
        assert_eq!(remove.record, None);
        assert_eq!(remove.user_id.map(|id| id.to_string()).as_deref(), Some(ID));
        for raw in [
            json!({}),
            json!({"dynamodb": {"Keys": {"pk": {"S": "USER#nope"}}}}),
            json!(7),
        ] {
            assert!(matches!(
                Record::read(&raw).kind,
                Kind::Malformed(Malformed { record: None, .. })
            ));
        }
        let renamed_without_version = record(
            "MODIFY",
            &pk,
            Some(user_image(1, "Grace", "a@x.io")),
            Some(user_image(1, "Ada", "a@x.io")),
        );
        assert!(matches!(
            Record::read(&renamed_without_version).kind,
            Kind::Malformed(_)
        ));
    }
}
