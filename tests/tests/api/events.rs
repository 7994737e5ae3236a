//! Domain events (API.md, "Events"): the stream events of `events/publish-events/` and the
//! users table's own stream fed to publish-events as Lambda's event source mapping feeds it,
//! against moto's EventBridge and SQS, read back from a queue a rule on the bus fills.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use users::events::publisher::GIVE_UP_AGE;
use users_tests::events::{Events, changed_ago, feed, invoke, invoke_within, open_stream};
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function, read_event, workspace_root};
use xtask::fault_proxy::{Fault, FaultProxy};

fn stream_event(name: &str) -> Value {
    read_event(
        &workspace_root()
            .join("events/publish-events")
            .join(format!("{name}.json")),
    )
}

fn records(event: &Value) -> Vec<Value> {
    event["Records"].as_array().cloned().expect("Records")
}

fn sequence_number(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .expect("a sequence number")
}

fn batch(records: &[Value]) -> Value {
    json!({ "Records": records })
}

/// A change young enough to be retried by Lambda when it cannot be published.
const YOUNG: Duration = Duration::from_secs(60);

/// A change too old to wait for another retry: the function keeps it in the dead-letter queue.
fn old() -> Duration {
    GIVE_UP_AGE + Duration::from_secs(120)
}

fn no_failures() -> Value {
    json!({ "batchItemFailures": [] })
}

fn failure_at(record: &Value) -> Value {
    json!({ "batchItemFailures": [{ "itemIdentifier": sequence_number(record) }] })
}

/// `(detail-type, user_id, version)` of each delivered event, in delivery order.
fn summary(delivered: &[Value]) -> Vec<(String, String, u64)> {
    delivered
        .iter()
        .map(|event| {
            (
                event["detail-type"].as_str().unwrap_or_default().to_owned(),
                event["detail"]["user_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                event["detail"]["version"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Every event is the contract's: its source, its detail's fields, an `event_id` made of the
/// user and the version.
fn assert_contract(event: &Value) {
    assert_eq!(event["source"], "users-service", "{event}");
    let detail = &event["detail"];
    let user_id = detail["user_id"].as_str().expect("user_id");
    let version = detail["version"].as_u64().expect("version");
    assert_eq!(
        detail["event_id"],
        format!("{user_id}-v{version}"),
        "{event}"
    );
    assert!(detail["occurred_at"].as_str().is_some(), "{event}");
    let fields: Vec<&str> = detail
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    match event["detail-type"].as_str() {
        Some("UserCreated") => {
            assert_eq!(fields.len(), 5, "{event}");
            assert_eq!(detail["occurred_at"], detail["user"]["created_at"]);
            assert_eq!(detail["user"]["id"], user_id);
        }
        Some("UserUpdated") => {
            assert_eq!(fields.len(), 6, "{event}");
            assert_eq!(detail["occurred_at"], detail["user"]["updated_at"]);
            assert!(detail["changed"].as_array().is_some_and(|c| !c.is_empty()));
        }
        Some("UserDeleted") => assert_eq!(fields.len(), 4, "{event}"),
        other => panic!("unexpected detail-type {other:?}"),
    }
    if let Some(user) = detail["user"].as_object() {
        let mut keys: Vec<&str> = user.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["created_at", "email", "id", "name", "updated_at"]);
    }
}

/// For each user, the versions of its delivered events, in delivery order.
fn versions_by_user(delivered: &[Value]) -> HashMap<String, Vec<u64>> {
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    for (_, user, version) in summary(delivered) {
        versions.entry(user).or_default().push(version);
    }
    versions
}

#[tokio::test]
async fn every_stream_event_in_events_is_published_as_the_contract_says() {
    let events = Events::new().await;
    let publisher = events.publisher();
    let cases: [(&str, &[&str], usize); 7] = [
        ("create", &["UserCreated"], 0),
        ("email-change", &["UserUpdated"], 0),
        ("name-change", &["UserUpdated"], 0),
        ("delete", &["UserDeleted"], 0),
        ("internal-item", &[], 0),
        (
            "mixed-batch",
            &[
                "UserCreated",
                "UserCreated",
                "UserUpdated",
                "UserUpdated",
                "UserUpdated",
                "UserDeleted",
            ],
            0,
        ),
        ("malformed-record", &["UserCreated", "UserUpdated"], 2),
    ];
    for (name, types, dead) in cases {
        let answer = invoke(&publisher, &stream_event(name)).await;
        assert_eq!(answer, Ok(no_failures()), "{name}");
        let delivered = events.delivered(types.len()).await;
        let delivered_types: Vec<String> =
            summary(&delivered).into_iter().map(|(t, ..)| t).collect();
        assert_eq!(delivered_types, types, "{name}");
        delivered.iter().for_each(assert_contract);
        for versions in versions_by_user(&delivered).values() {
            assert!(versions.is_sorted(), "{name}: {versions:?}");
        }
        let letters = events.dead_letters(dead).await;
        assert_eq!(letters.len(), dead, "{name}: {letters:?}");
        match name {
            "email-change" => assert_eq!(delivered[0]["detail"]["changed"], json!(["email"])),
            "name-change" => assert_eq!(delivered[0]["detail"]["changed"], json!(["name"])),
            "delete" => {
                assert_eq!(delivered[0]["detail"]["version"], 4);
                assert_eq!(
                    delivered[0]["detail"]["occurred_at"],
                    "2026-11-23T10:15:50Z"
                );
            }
            "malformed-record" => {
                // The create keeps its record; the erasure keeps its ids only.
                assert!(letters[0]["record"].is_object(), "{}", letters[0]);
                assert!(letters[1]["record"].is_null(), "{}", letters[1]);
                assert!(!letters[1].to_string().contains("Alan"), "{}", letters[1]);
                assert!(letters[1]["user_id"].is_string(), "{}", letters[1]);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn changes_made_through_the_api_reach_the_bus_in_order() {
    let app = App::new().await;
    let events = Events::new().await;
    let publisher = events.publisher();
    let created = app
        .invoke(
            Function::CreateUser,
            &EventBuilder::create(r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#).build(),
        )
        .await;
    assert_eq!(created.status, 201);
    let ada = created.body["id"].as_str().expect("an id").to_owned();
    for patch in [
        r#"{"email":"Ada.Lovelace@example.com"}"#,
        r#"{"name":"Ada King"}"#,
        r#"{"name":"Ada King"}"#,
    ] {
        let reply = app
            .invoke(
                Function::UpdateUser,
                &EventBuilder::patch(&ada, patch).build(),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    let grace = app
        .invoke(
            Function::CreateUser,
            &EventBuilder::create(r#"{"name":"Grace Hopper","email":"grace@example.com"}"#).build(),
        )
        .await;
    let grace = grace.body["id"].as_str().expect("an id").to_owned();
    let deleted = app
        .invoke(Function::DeleteUser, &EventBuilder::delete(&ada).build())
        .await;
    assert_eq!(deleted.status, 204);

    let mut stream = open_stream(&app).await;
    let deliveries = feed(&mut stream, &publisher).await;
    assert!(!deliveries.is_empty());
    for delivery in &deliveries {
        assert_eq!(delivery.response, no_failures());
    }
    let delivered = events.delivered(5).await;
    delivered.iter().for_each(assert_contract);
    assert_eq!(
        summary(&delivered),
        [
            ("UserCreated".into(), ada.clone(), 1),
            ("UserUpdated".into(), ada.clone(), 2),
            ("UserUpdated".into(), ada.clone(), 3),
            ("UserCreated".into(), grace.clone(), 1),
            ("UserDeleted".into(), ada.clone(), 4),
        ]
    );
    assert_eq!(delivered[1]["detail"]["changed"], json!(["email"]));
    assert_eq!(
        delivered[1]["detail"]["user"]["email"],
        "Ada.Lovelace@example.com"
    );
    assert_eq!(delivered[2]["detail"]["changed"], json!(["name"]));
    let erasure = delivered[4].to_string();
    assert!(
        !erasure.contains("Ada") && !erasure.contains("example.com"),
        "{erasure}"
    );

    // Fed again, the stream has nothing new: nothing is published twice.
    let again = feed(&mut stream, &publisher).await;
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(events.delivered(0).await, Vec::<Value>::new());
    assert_eq!(events.dead_letters(0).await, Vec::<Value>::new());
}

/// The entries of each `PutEvents` call the proxy saw, as `(user_id, version)`.
fn calls(requests: &[String]) -> Vec<Vec<(String, u64)>> {
    requests
        .iter()
        .map(|body| {
            let request: Value = serde_json::from_str(body).expect("a JSON request");
            request["Entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|entry| {
                    let detail: Value =
                        serde_json::from_str(entry["Detail"].as_str().expect("a detail"))
                            .expect("a JSON detail");
                    (
                        detail["user_id"].as_str().unwrap_or_default().to_owned(),
                        detail["version"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_user_s_changes_are_sent_in_order_and_never_two_in_one_call() {
    let events = Events::new().await;
    let (proxy, publisher) = events.behind_fault_proxy().await;
    let answer = invoke(&publisher, &stream_event("mixed-batch")).await;
    assert_eq!(answer, Ok(no_failures()));
    let calls = calls(&proxy.requests(Some("PutEvents")));
    assert_eq!(calls.len(), 4, "{calls:?}");
    let mut last: HashMap<String, u64> = HashMap::new();
    for call in &calls {
        let mut users: Vec<&String> = call.iter().map(|(user, _)| user).collect();
        users.sort();
        users.dedup();
        assert_eq!(
            users.len(),
            call.len(),
            "two changes of one user in {call:?}"
        );
        for (user, version) in call {
            let previous = last.insert(user.clone(), *version);
            assert!(
                previous < Some(*version),
                "{user} v{version} after v{previous:?}"
            );
        }
    }
    let delivered = events.delivered(6).await;
    for versions in versions_by_user(&delivered).values() {
        assert!(versions.is_sorted(), "{versions:?}");
    }
}

#[tokio::test]
async fn entries_rejected_inside_a_successful_call_are_sent_again() {
    let events = Events::new().await;
    let (proxy, publisher) = events.behind_fault_proxy().await;
    let mixed = stream_event("mixed-batch");
    let ada_v2 = records(&mixed)[3]["dynamodb"]["NewImage"]["id"]["S"]
        .as_str()
        .map(|id| format!("{id}-v2"))
        .expect("ada's id");
    proxy.inject(
        Some("PutEvents"),
        Fault::RejectEntries {
            containing: ada_v2.clone(),
            code: "ThrottlingException".into(),
        },
        Some(2),
    );
    let answer = invoke(&publisher, &mixed).await;
    assert_eq!(answer, Ok(no_failures()));
    assert_eq!(proxy.injected(), 2);
    let delivered = events.delivered(6).await;
    assert_eq!(delivered.len(), 6);
    let ada_v2_events = delivered
        .iter()
        .filter(|event| event["detail"]["event_id"] == ada_v2.as_str())
        .count();
    assert_eq!(ada_v2_events, 1, "published once, after its retries");
    // Retried alone: the rejected entry's call, then two calls of it by itself.
    let calls = calls(&proxy.requests(Some("PutEvents")));
    assert_eq!(
        calls.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 2, 1, 1, 1, 1]
    );
}

#[tokio::test]
async fn an_entry_that_keeps_failing_is_reported_at_its_record_and_nothing_after_it_is_sent() {
    let events = Events::new().await;
    let (proxy, publisher) = events.behind_fault_proxy().await;
    let all = changed_ago(&records_of("mixed-batch"), YOUNG);
    let mixed = batch(&all);
    let ada = reject_adas_second_version(&proxy, &all);
    let answer = invoke(&publisher, &mixed).await;
    assert_eq!(answer, Ok(failure_at(&all[3])));
    // Grace's rename shared the failing call and was published; ada's later changes were not.
    let delivered = summary(&events.delivered(3).await);
    let types: Vec<(&str, u64)> = delivered.iter().map(|(t, _, v)| (t.as_str(), *v)).collect();
    assert_eq!(
        types,
        [("UserCreated", 1), ("UserCreated", 1), ("UserUpdated", 2)]
    );
    assert!(
        delivered
            .iter()
            .all(|(_, user, version)| user != &ada || *version == 1)
    );

    // Lambda retries from the reported record; once EventBridge takes it, the rest follows.
    proxy.clear();
    let answer = invoke(&publisher, &batch(&all[3..])).await;
    assert_eq!(answer, Ok(no_failures()));
    let delivered = summary(&events.delivered(4).await);
    let ada_versions: Vec<u64> = delivered
        .iter()
        .filter(|(_, user, _)| user == &ada)
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(ada_versions, [2, 3, 4]);
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_fails_the_batch_at_its_first_event() {
    let events = Events::new().await;
    let (proxy, publisher) = events.behind_fault_proxy().await;
    proxy.inject(Some("PutEvents"), Fault::internal_server_error(), None);
    let internal = records(&stream_event("internal-item"));
    let create = changed_ago(&records_of("create"), YOUNG);
    let records = [internal, create.clone()].concat();
    let answer = invoke(&publisher, &batch(&records)).await;
    assert_eq!(answer, Ok(failure_at(&create[0])));
    assert!(proxy.injected() >= 1);
    assert_eq!(events.delivered(0).await, Vec::<Value>::new());
    assert_eq!(events.dead_letters(0).await, Vec::<Value>::new());

    // A record that must be dead-lettered while the queue is unreachable is not done either.
    proxy.clear();
    proxy.inject(Some("SendMessage"), Fault::internal_server_error(), None);
    let malformed = records_of("malformed-record");
    let answer = invoke(&publisher, &batch(&malformed)).await;
    assert_eq!(answer, Ok(failure_at(&malformed[0])));
    assert_eq!(events.delivered(0).await, Vec::<Value>::new());
}

/// A dead letter is a call too: with less left of the invocation than a call may take, the
/// record is reported for Lambda to retry rather than sent past the deadline.
#[tokio::test]
async fn with_too_little_time_left_a_dead_letter_waits_for_the_retry() {
    let events = Events::new().await;
    let malformed = records_of("malformed-record");
    let answer = invoke_within(
        &events.publisher(),
        &batch(&malformed),
        users::events::bus::CALL_BUDGET / 2,
    )
    .await;
    assert_eq!(answer, Ok(failure_at(&malformed[0])));
    assert_eq!(events.dead_letters(0).await, Vec::<Value>::new());
}

fn records_of(name: &str) -> Vec<Value> {
    records(&stream_event(name))
}

#[tokio::test]
async fn a_change_still_not_published_at_the_give_up_age_is_dead_lettered_and_the_batch_moves_on() {
    let events = Events::new().await;
    let (proxy, publisher) = events.behind_fault_proxy().await;
    proxy.inject(Some("PutEvents"), Fault::internal_server_error(), None);
    let create = changed_ago(&records_of("create"), old());
    let delete = changed_ago(&records_of("delete"), old());
    let answer = invoke(
        &publisher,
        &batch(&[create.clone(), delete.clone()].concat()),
    )
    .await;
    assert_eq!(answer, Ok(no_failures()));
    assert_eq!(events.delivered(0).await, Vec::<Value>::new());
    let letters = events.dead_letters(2).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let letter = |detail_type: &str| {
        letters
            .iter()
            .find(|letter| letter["event"]["detail-type"] == detail_type)
            .unwrap_or_else(|| panic!("no {detail_type} letter in {letters:?}"))
    };
    let created = letter("UserCreated");
    assert_eq!(
        created["stream_record"]["sequence_number"],
        sequence_number(&create[0])
    );
    assert!(
        created["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("not published within 50 minutes")),
        "{created}"
    );
    assert_eq!(created["event"]["detail"]["user"]["name"], "Ada Lovelace");
    // The erasure's letter is its event: ids and version only, no name and no email.
    let deleted = letter("UserDeleted");
    assert_eq!(
        deleted["stream_record"]["sequence_number"],
        sequence_number(&delete[0])
    );
    assert_eq!(deleted["version"], 4);
    let detail = deleted["event"]["detail"].as_object().expect("a detail");
    let mut fields: Vec<&str> = detail.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["event_id", "occurred_at", "user_id", "version"]);
    let text = deleted.to_string();
    for personal in ["Ada", "Lovelace", "King", "example.com"] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }

    // A young change is still Lambda's to retry: reported, not dead-lettered.
    let young = changed_ago(&records_of("name-change"), YOUNG);
    let answer = invoke(&publisher, &batch(&young)).await;
    assert_eq!(answer, Ok(failure_at(&young[0])));
    assert_eq!(events.dead_letters(0).await, Vec::<Value>::new());

    // An old one the queue cannot take either is reported as well.
    proxy.inject(Some("SendMessage"), Fault::internal_server_error(), None);
    let answer = invoke(&publisher, &batch(&create)).await;
    assert_eq!(answer, Ok(failure_at(&create[0])));
    assert_eq!(events.delivered(0).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_user_s_later_changes_follow_an_old_change_only_once_it_is_dead_lettered() {
    let events = Events::new().await;
    let (proxy, publisher) = events.behind_fault_proxy().await;
    let all = changed_ago(&records_of("mixed-batch"), old());
    let ada = reject_adas_second_version(&proxy, &all);
    let answer = invoke(&publisher, &batch(&all)).await;
    assert_eq!(answer, Ok(no_failures()));
    let letters = events.dead_letters(1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["event_id"], format!("{ada}-v2"));
    let delivered = summary(&events.delivered(5).await);
    let ada_versions: Vec<u64> = delivered
        .iter()
        .filter(|(_, user, _)| user == &ada)
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(ada_versions, [1, 3, 4]);
    // Ada's v3 went out in a call after the last attempt at her v2.
    let calls = calls(&proxy.requests(Some("PutEvents")));
    let last_v2 = calls
        .iter()
        .rposition(|call| call.contains(&(ada.clone(), 2)))
        .expect("v2 was sent");
    let v3 = calls
        .iter()
        .position(|call| call.contains(&(ada.clone(), 3)))
        .expect("v3 was sent");
    assert!(last_v2 < v3, "{calls:?}");
}

#[tokio::test]
async fn an_erasure_leaves_no_name_and_no_email_in_what_the_function_writes_or_sends() {
    let app = App::new().await;
    let events = Events::new().await;
    let proxy = xtask::fault_proxy::FaultProxy::start(&events.endpoint)
        .await
        .expect("the proxy starts");
    let mut env = events.function_env(&proxy.endpoint);
    env.push(("AWS_LAMBDA_LOG_FORMAT", "JSON".into()));
    env.push(("AWS_LAMBDA_LOG_LEVEL", "TRACE".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let function =
        FunctionProcess::start_binary(&app, "publish-events", app.endpoint(), &env).await;
    // Ada's erasure, and Alan's, whose record is malformed and so dead-lettered.
    let alan = records_of("malformed-record")[2].clone();
    let erasures = batch(&[records_of("delete"), vec![alan]].concat());
    let answer = function.invoke_json(&erasures).await;
    assert_eq!(answer, no_failures());
    let output = function.stop().await;

    let delivered = events.delivered(1).await;
    assert_eq!(summary(&delivered)[0].0, "UserDeleted");
    assert_eq!(events.dead_letters(1).await.len(), 1);
    let sent = proxy.requests(None);
    assert_eq!(sent.len(), 2, "one PutEvents, one SendMessage: {sent:?}");
    let everything = [output.as_str(), &sent.join("\n"), &delivered[0].to_string()].join("\n");
    assert!(output.contains("batch done"), "{output}");
    for personal in [
        "Ada",
        "Lovelace",
        "King",
        "ada@",
        "ada.lovelace",
        "Alan",
        "Turing",
        "alan@",
    ] {
        assert!(
            !everything.contains(personal),
            "{personal} in:\n{everything}"
        );
    }
}

/// Has EventBridge reject, with a retryable code, every entry of the second version of Ada, the
/// user of the mixed batch's fourth record; returns her id.
fn reject_adas_second_version(proxy: &FaultProxy, records: &[Value]) -> String {
    let ada = records[3]["dynamodb"]["NewImage"]["id"]["S"]
        .as_str()
        .expect("ada's id")
        .to_owned();
    proxy.inject(
        Some("PutEvents"),
        Fault::RejectEntries {
            containing: format!("{ada}-v2"),
            code: "InternalFailure".into(),
        },
        None,
    );
    ada
}
