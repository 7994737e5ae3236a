//! `PATCH /users/{id}`.

// The layout of the handler's future (service and store calls nested in it) is deeper than
// the compiler's default query depth.
#![recursion_limit = "256"]

use lambda_http::{Error, lambda_runtime, service_fn};
use users::clock::SystemClock;
use users::dynamodb::Probe;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sdk = users::config::start().await?;
    // One for the execution environment, shared by the requests it serves at once.
    let store: &_ = Box::leak(Box::new(users::config::store(&sdk)?));
    store.connect_if_ahead_of_traffic(Probe::Get).await;
    lambda_runtime::run_concurrent(service_fn(move |event| {
        users::handlers::update_user(store, &SystemClock, event)
    }))
    .await
}
