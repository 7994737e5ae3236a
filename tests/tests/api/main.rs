//! The users API against a real DynamoDB-compatible server: every event in `events/`, then
//! the scenarios the contract describes.

mod change_faults;
mod change_races;
mod events;
mod failures;
mod faults;
mod hostile;
mod hostile_changes;
mod lifecycle;
mod logs;
mod races;
mod replay;
mod scenarios;
mod telemetry;
