//! How events are grouped into `PutEvents` calls: in stream order, within EventBridge's limits
//! (10 entries and 256 KB a call), and never two changes of one user in one call, so that the
//! calls, sent one after the other, publish each user's changes in the order they were made.

use super::event::DomainEvent;
use crate::domain::UserId;

pub const MAX_ENTRIES: usize = 10;
pub const MAX_BYTES: usize = 256 * 1024;

/// One `PutEvents` call being filled: the events and the indexes of their records.
#[derive(Debug, Default)]
pub struct Call {
    pub entries: Vec<(usize, DomainEvent)>,
    bytes: usize,
}

impl Call {
    /// Whether `event` may join this call: there is room, and its user has no change in it yet.
    pub fn admits(&self, event: &DomainEvent) -> bool {
        self.entries.len() < MAX_ENTRIES
            && self.bytes + event.entry_size() <= MAX_BYTES
            && !self.has(event.user_id)
    }

    pub fn push(&mut self, index: usize, event: DomainEvent) {
        self.bytes += event.entry_size();
        self.entries.push((index, event));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn has(&self, user: UserId) -> bool {
        self.entries.iter().any(|(_, e)| e.user_id == user)
    }
}

/// Whether an event fits a call at all; one that does not can never be published.
pub fn fits(event: &DomainEvent) -> bool {
    event.entry_size() <= MAX_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;
    use std::time::SystemTime;

    fn event(user: UserId, version: u64, detail_len: usize) -> DomainEvent {
        DomainEvent {
            user_id: user,
            version,
            detail_type: "UserUpdated",
            occurred_at: "2026-01-01T00:00:00Z".into(),
            detail: "x".repeat(detail_len),
        }
    }

    /// The calls a sequence of events makes, as the records' indexes.
    fn plan(events: Vec<DomainEvent>) -> Vec<Vec<usize>> {
        let mut calls = vec![Call::default()];
        for (index, event) in events.into_iter().enumerate() {
            if !calls.last().is_some_and(|call| call.admits(&event)) {
                calls.push(Call::default());
            }
            if let Some(call) = calls.last_mut() {
                call.push(index, event);
            }
        }
        calls
            .into_iter()
            .filter(|call| !call.is_empty())
            .map(|call| call.entries.into_iter().map(|(i, _)| i).collect())
            .collect()
    }

    #[test]
    fn a_user_s_second_change_starts_a_new_call() {
        let (a, b) = (
            UserId::generate(SystemTime::now()),
            UserId::generate(SystemTime::now()),
        );
        let events = vec![
            event(a, 1, 10),
            event(b, 1, 10),
            event(a, 2, 10),
            event(b, 2, 10),
        ];
        assert_eq!(plan(events), [vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn calls_hold_ten_entries_and_256_kb_at_most() {
        let users: Vec<UserId> = (0..25)
            .map(|_| UserId::generate(SystemTime::now()))
            .collect();
        let small = users.iter().map(|u| event(*u, 1, 10)).collect();
        let sizes: Vec<usize> = plan(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big = users
            .iter()
            .take(5)
            .map(|u| event(*u, 1, 100_000))
            .collect();
        let sizes: Vec<usize> = plan(big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(!fits(&event(users[0], 1, MAX_BYTES)));
    }
}
