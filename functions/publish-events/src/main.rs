//! The users table's stream to the stack's EventBridge bus (API.md, "Events").

// The layout of the handler's future (batches, calls and retries nested in it) is deeper than
// the compiler's default query depth.
#![recursion_limit = "256"]

use lambda_runtime::{Error, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sdk = users::config::start().await?;
    let publisher = users::events::publisher(&sdk)?;
    lambda_runtime::run(service_fn(|event| {
        users::events::publish(&publisher, event)
    }))
    .await
}
