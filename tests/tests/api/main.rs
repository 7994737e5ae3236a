//! The users API against a real DynamoDB-compatible server: every event in `events/`, then
//! the scenarios the contract describes.

mod change_faults;
mod change_races;
mod concurrency;
mod events;
mod failures;
mod faults;
mod hostile;
mod hostile_changes;
mod lifecycle;
mod logs;
mod model_parts;
mod offline_model;
mod races;
mod replay;
mod round_trips;
mod scenarios;
mod sdk_config;
mod telemetry;
