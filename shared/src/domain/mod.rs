//! The users domain: types whose constructors are the only way in.

mod email;
mod user;
mod user_id;
mod user_name;
mod version;

pub use email::Email;
pub use user::{NewUser, StoredUser, User, UserPatch, change_time};
pub use user_id::UserId;
pub use user_name::UserName;
pub use version::{Precondition, Version};

/// Why a value was refused; the text is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);
