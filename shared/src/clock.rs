//! The time rules of the service (creation times, the idempotency window, in-flight claims)
//! read the time through [`Clock`], so tests can move it.

use std::time::SystemTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's clock, which the functions use.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
