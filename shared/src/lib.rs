//! The users service's domain, store and HTTP mapping, shared by its functions.

pub mod clock;
pub mod config;
pub mod cursor;
pub mod domain;
pub mod dynamodb;
pub mod events;
pub mod handlers;
pub mod http;
pub mod idempotency;
pub mod sdk;
pub mod service;
pub mod store;
pub mod telemetry;
