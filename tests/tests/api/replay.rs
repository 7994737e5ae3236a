use std::time::Duration;

use users::domain::{StoredUser, User};
use users_tests::{App, Function, Reply, event, events};

/// The user the replayed events may refer to (`get-user/200-known-id`, the duplicate email,
/// the user the update events change).
pub fn ada() -> User {
    seeded(
        "01JD3F5Q8K2X7V9M4T6B1N0C8R",
        "Ada Lovelace",
        "ada@example.com",
    )
}

/// The users the delete events erase (and whose email an update finds taken).
fn mary_and_emmy() -> [User; 2] {
    [
        seeded(
            "01JD3F5Q8K2X7V9M4T6B1N0C8V",
            "Mary Somerville",
            "mary@example.com",
        ),
        seeded(
            "01JD3F5Q8K2X7V9M4T6B1N0C8W",
            "Emmy Noether",
            "emmy@example.com",
        ),
    ]
}

/// A user whose id was made at 2024-11-20T00:22:21.715Z, as stored before any change.
fn seeded(id: &str, name: &str, email: &str) -> User {
    User::restore(StoredUser {
        id,
        name,
        email,
        created_at: "2024-11-20T00:22:21.715Z",
        updated_at: None,
        version: None,
        created_by: None,
    })
    .expect("a valid user")
}

/// The status the contract gives each error code.
pub fn status_of(code: &str) -> Option<u16> {
    Some(match code {
        "invalid_json"
        | "invalid_id"
        | "invalid_limit"
        | "invalid_cursor"
        | "invalid_idempotency_key" => 400,
        "not_found" => 404,
        "method_not_allowed" => 405,
        "email_taken" | "request_in_progress" => 409,
        "precondition_failed" => 412,
        "payload_too_large" => 413,
        "unsupported_media_type" => 415,
        "validation_failed" | "idempotency_key_reused" => 422,
        "unavailable" => 503,
        "internal" => 500,
        _ => return None,
    })
}

/// What every response of the contract carries, and what each kind of answer adds.
pub fn contract_violations(reply: &Reply) -> Vec<String> {
    let mut problems = Vec::new();
    if reply.status == 204 {
        if reply.header("content-type").is_some() || !reply.body.is_null() {
            problems.push("a 204 with a body or a content-type".to_owned());
        }
    } else if reply.header("content-type") != Some("application/json") {
        problems.push("content-type is not application/json".to_owned());
    }
    let one_user = matches!(reply.status, 200 | 201) && reply.body.get("id").is_some();
    if one_user != reply.header("etag").is_some() {
        problems.push(
            "etag on a response that does not carry exactly one user, or not on one that does"
                .to_owned(),
        );
    }
    if reply.header("cache-control") != Some("no-store") {
        problems.push("cache-control is not no-store".to_owned());
    }
    let Some(request_id) = reply.header("x-request-id") else {
        problems.push("no x-request-id".to_owned());
        return problems;
    };
    match reply.status {
        200..=299 => {}
        status => {
            let error = &reply.body["error"];
            if reply.code().and_then(status_of) != Some(status) {
                problems.push(format!(
                    "code {:?} is not one of status {status}",
                    reply.code()
                ));
            }
            if error["request_id"].as_str() != Some(request_id) {
                problems.push("error.request_id differs from x-request-id".to_owned());
            }
            if error["message"].as_str().is_none_or(str::is_empty) {
                problems.push("no error.message".to_owned());
            }
            if error.as_object().map(|o| o.len()) != Some(3)
                || reply.body.as_object().map(|o| o.len()) != Some(1)
            {
                problems.push(format!("unexpected error body shape: {}", reply.body));
            }
            if status == 405 && reply.header("allow").is_none() {
                problems.push("405 without allow".to_owned());
            }
            if matches!(reply.code(), Some("request_in_progress" | "unavailable"))
                && reply.header("retry-after").is_none()
            {
                problems.push("no retry-after".to_owned());
            }
        }
    }
    if reply.status == 201 {
        let location = reply.body["id"].as_str().map(|id| format!("/users/{id}"));
        if reply.header("location") != location.as_deref() {
            problems.push("201 without the user's location".to_owned());
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_produces_the_status_its_name_states() {
    let app = App::new().await;
    app.seed_user(&ada()).await;
    for user in mary_and_emmy() {
        app.seed_user(&user).await;
    }
    let in_flight = event(Function::CreateUser, "409-request-in-progress");
    app.seed_in_flight(&in_flight, Duration::from_secs(600))
        .await;

    let mut failures = Vec::new();
    let mut replayed = 0;
    for function in Function::ALL {
        for (path, status, event) in events(function) {
            let name = path
                .strip_prefix(users_tests::workspace_root())
                .unwrap_or(&path)
                .display()
                .to_string();
            let before = app.snapshot().await;
            let reply = app.invoke(function, &event).await;
            replayed += 1;
            if reply.status != status {
                failures.push(format!(
                    "{name}: {} instead of {status}: {}",
                    reply.status, reply.body
                ));
            }
            for problem in contract_violations(&reply) {
                failures.push(format!("{name}: {problem}"));
            }
            if status >= 400 && app.snapshot().await != before {
                failures.push(format!("{name}: a rejected request changed the tables"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} events failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(replayed >= 80, "only {replayed} events replayed");
}
