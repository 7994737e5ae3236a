//! get-user as deployed, except that reading the user [`users_tests::PANIC_ID`] panics, as a bug
//! would: the offline model's panic, run as a process under the template's settings.

// The layout of the handler's future is deeper than the compiler's default query depth.
#![recursion_limit = "256"]

use lambda_http::{Error, lambda_runtime, service_fn};
use users::domain::{Precondition, User, UserId, UserName};
use users::dynamodb::DynamoStore;
use users::store::{Page, Renamed, StoreError, UserStore};

struct PanicsOnOneId(DynamoStore);

impl UserStore for PanicsOnOneId {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        assert!(
            id.to_string() != users_tests::PANIC_ID,
            "a bug in request handling"
        );
        self.0.get(id).await
    }
    async fn list(&self, before: Option<UserId>, limit: usize) -> Result<Page, StoreError> {
        self.0.list(before, limit).await
    }
    async fn insert(
        &self,
        user: &User,
        claim: Option<&users::idempotency::ClaimRequest>,
    ) -> Result<(), StoreError> {
        self.0.insert(user, claim).await
    }
    async fn update(&self, current: &User, next: &User) -> Result<(), StoreError> {
        self.0.update(current, next).await
    }
    async fn delete(&self, user: &User) -> Result<(), StoreError> {
        self.0.delete(user).await
    }
    async fn rename(
        &self,
        id: UserId,
        name: &UserName,
        updated_at: &str,
        precondition: Option<&Precondition>,
    ) -> Result<Renamed, StoreError> {
        self.0.rename(id, name, updated_at, precondition).await
    }
    async fn forget(&self, scoped_key: &str, user: UserId) -> Result<(), StoreError> {
        self.0.forget(scoped_key, user).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sdk = users::config::start().await?;
    let store = PanicsOnOneId(users::config::store(&sdk)?);
    lambda_runtime::run(service_fn(|event| users::handlers::get_user(&store, event))).await
}
