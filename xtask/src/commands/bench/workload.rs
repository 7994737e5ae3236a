//! What the bench asks each function, invocation after invocation, and the users it seeds for
//! that beforehand, outside the timed part.
//!
//! Every request must change what it would change in production: an update renames its user
//! each time (a patch that changes nothing costs one read only), and a delete deletes a user
//! that exists (a `404` costs one read only). Each implementation gets users of its own, so that
//! the Rust function and the peer face the same table.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use users::domain::{Email, NewUser, User, UserName, Version};
use users::dynamodb::DynamoStore;
use users::store::UserStore;
use xtask::Result;

use super::Implementation;

/// The requests, in a sentence each, for the results.
pub(super) const REQUESTS: &str = "create-user creates a user with a new email and a new \
    `idempotency-key`; get-user reads \
    one seeded user; list-users reads the first page (20 users); update-user renames a user of \
    its own each time, with its current etag in `if-match` (one conditional write; the peer \
    reads first); delete-user \
    deletes a seeded user of its own, another one each time (one read, one transaction of two \
    deletes).";

/// The request of each invocation of one implementation of one function.
pub(super) struct Workload {
    /// The function's sample event, which every request is made from.
    base: Value,
    kind: Kind,
}

enum Kind {
    /// A new email and a new idempotency key in every request; `tag` keeps them apart across
    /// runs and implementations.
    Create { tag: String },
    /// One seeded user, read again and again.
    Get { id: String },
    /// The first page, at the default limit.
    List,
    /// A user of this run's own, at version 1 when seeded: request `n` finds it at version
    /// `n + 1` and renames it.
    Update { id: String },
    /// Users of this run's own, one for each request.
    Delete { ids: Vec<String> },
}

impl Workload {
    /// The workload of `function` run by `implementation` for `invocations` requests, seeding
    /// the users it needs. `known` is a user of the listing's seed, which gets read.
    pub(super) async fn prepare(
        root: &Path,
        store: &DynamoStore,
        function: &str,
        implementation: Implementation,
        known: &str,
        invocations: usize,
    ) -> Result<Self> {
        let who = implementation.name();
        let (sample, kind) = match function {
            "create-user" => (
                "201-create.json",
                Kind::Create {
                    tag: format!("{}-{who}", std::process::id()),
                },
            ),
            "get-user" => (
                "200-known-id.json",
                Kind::Get {
                    id: known.to_owned(),
                },
            ),
            "list-users" => ("200-first-page.json", Kind::List),
            "update-user" => {
                let ids = seed(store, &format!("update-{who}"), 1).await?;
                ("200-rename.json", Kind::Update { id: ids[0].clone() })
            }
            "delete-user" => {
                eprintln!("seeding {invocations} users for delete-user ({who})");
                let ids = seed(store, &format!("delete-{who}"), invocations).await?;
                ("204-delete.json", Kind::Delete { ids })
            }
            other => return Err(format!("no workload for {other}").into()),
        };
        let path = root.join("events").join(function).join(sample);
        let base = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { base, kind })
    }

    /// The event of invocation `n` (counted from 0 over the cold starts, then the warm ones).
    pub(super) fn event(&self, n: usize) -> Result<Vec<u8>> {
        let mut event = self.base.clone();
        match &self.kind {
            Kind::Create { tag } => {
                let email = format!("bench-{tag}-{n}@example.com");
                set_body(&mut event, &json!({"name": "Bench User", "email": email}));
                event["headers"]["idempotency-key"] = Value::from(format!("bench-{tag}-{n}"));
            }
            Kind::Get { id } => set_id(&mut event, id),
            Kind::List => {}
            Kind::Update { id } => {
                set_id(&mut event, id);
                set_body(&mut event, &json!({"name": format!("Renamed User {n}")}));
                let version = Version::new(u64::try_from(n)? + 1);
                event["headers"]["if-match"] = Value::from(version.etag());
            }
            Kind::Delete { ids } => {
                let id = ids
                    .get(n)
                    .ok_or("more delete-user invocations than users seeded for them")?;
                set_id(&mut event, id);
            }
        }
        event["requestContext"]["requestId"] = Value::from(format!("bench-{n}"));
        Ok(serde_json::to_vec(&event)?)
    }
}

/// Points the event's path at user `id`.
fn set_id(event: &mut Value, id: &str) {
    event["rawPath"] = Value::from(format!("/users/{id}"));
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"]["id"] = Value::from(id);
}

/// Replaces the event's JSON body, and the length its headers give.
fn set_body(event: &mut Value, body: &Value) {
    let body = body.to_string();
    if event["headers"].get("content-length").is_some() {
        event["headers"]["content-length"] = Value::from(body.len().to_string());
    }
    event["body"] = Value::from(body);
}

/// Stores the users of the listing through the store's own insert; returns one of their ids.
pub(super) async fn seed_listing(store: &DynamoStore, count: usize) -> Result<String> {
    let ids = seed(store, "seed", count).await?;
    Ok(ids.get(count / 2).cloned().unwrap_or_default())
}

/// Stores `count` users named after `prefix` (16 inserts at a time); returns their ids in order.
async fn seed(store: &DynamoStore, prefix: &str, count: usize) -> Result<Vec<String>> {
    let mut tasks = JoinSet::new();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let new = NewUser {
            name: UserName::parse(&format!("Seed User {i}"))?,
            email: Email::parse(&format!("{prefix}-{i}@example.com"))?,
        };
        let user = User::create(new, SystemTime::now());
        ids.push(user.id().to_string());
        let store = store.clone();
        tasks.spawn(async move { store.insert(&user, None).await });
        while tasks.len() >= 16 {
            tasks
                .join_next()
                .await
                .ok_or("no seeding task")??
                .map_err(|e| e.to_string())?;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done?.map_err(|e| e.to_string())?;
    }
    Ok(ids)
}
