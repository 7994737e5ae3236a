//! What a million requests cost in us-east-1 on arm64, at the prices bench/README.md cites, and
//! the memory size that costs least within a latency bound.

use serde_json::Value;

use super::model::Memory;

/// Lambda, per request (arm64 and x86_64 alike).
pub(super) const LAMBDA_REQUEST_USD: f64 = 0.20 / 1e6;
/// Lambda duration on arm64, per GB-second (the first 7.5 billion GB-seconds of a month).
pub(super) const LAMBDA_ARM64_GB_SECOND_USD: f64 = 0.000_013_333_4;
/// DynamoDB on-demand, per read request unit.
pub(super) const DYNAMODB_RRU_USD: f64 = 0.125 / 1e6;
/// DynamoDB on-demand, per write request unit.
pub(super) const DYNAMODB_WRU_USD: f64 = 0.625 / 1e6;
/// API Gateway HTTP API, per request (the first 300 million of a month).
pub(super) const HTTP_API_REQUEST_USD: f64 = 1.00 / 1e6;

/// How a user item's key begins in a request's JSON: only user items have a copy in the users
/// table's `ByNewest` index.
const USER_KEY_PREFIX: &str = "\"USER#";

/// Read and write request units of a series of DynamoDB requests.
#[derive(Default, Clone, Copy)]
pub(super) struct Capacity {
    pub rru: f64,
    pub wru: f64,
}

impl Capacity {
    /// The units a request (`operation`, JSON `body`) consumes, by DynamoDB's rules for items
    /// under 1 KB: a strongly consistent read 1 RRU (eventually consistent 0.5), a write 1 WRU,
    /// each item of a transaction twice that, and a write to a user item 1 WRU more for its copy
    /// in the `ByNewest` index (not doubled inside a transaction). A page of the listing, 21
    /// items of about 200 bytes read eventually consistent from the index, rounds up to two
    /// 4 KB blocks: 1 RRU.
    pub(super) fn of(operation: &str, body: &str) -> Self {
        let request: Value = serde_json::from_str(body).unwrap_or_default();
        let user_item = |write: &Value| write.to_string().contains(USER_KEY_PREFIX);
        match operation {
            "GetItem" if request["ConsistentRead"] == Value::Bool(true) => Self::read(1.0),
            "GetItem" => Self::read(0.5),
            "Query" => Self::read(1.0),
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let key = if operation == "PutItem" {
                    &request["Item"]["pk"]
                } else {
                    &request["Key"]["pk"]
                };
                Self::write(1.0 + f64::from(u8::from(user_item(key))))
            }
            "TransactWriteItems" => {
                let items = request["TransactItems"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let wru = items
                    .iter()
                    .map(|item| {
                        let write = item
                            .as_object()
                            .and_then(|o| o.values().next())
                            .cloned()
                            .unwrap_or_default();
                        let key = if write.get("Item").is_some() {
                            &write["Item"]["pk"]
                        } else {
                            &write["Key"]["pk"]
                        };
                        2.0 + f64::from(u8::from(
                            item.get("ConditionCheck").is_none() && user_item(key),
                        ))
                    })
                    .sum();
                Self::write(wru)
            }
            _ => Self::default(),
        }
    }

    fn read(rru: f64) -> Self {
        Self { rru, wru: 0.0 }
    }

    fn write(wru: f64) -> Self {
        Self { rru: 0.0, wru }
    }

    pub(super) fn add(&mut self, other: Self) {
        self.rru += other.rru;
        self.wru += other.wru;
    }

    pub(super) fn per(self, requests: usize) -> Self {
        let n = requests.max(1) as f64;
        Self {
            rru: self.rru / n,
            wru: self.wru / n,
        }
    }

    pub(super) fn usd_per_million(self) -> f64 {
        (self.rru * DYNAMODB_RRU_USD + self.wru * DYNAMODB_WRU_USD) * 1e6
    }
}

/// The duration Lambda bills for `ms`: rounded up to the whole millisecond.
pub(super) fn billed_ms(ms: f64) -> f64 {
    ms.ceil()
}

/// Lambda's charge for a million invocations billed `billed_ms` each at `memory`: requests and
/// duration.
pub(super) fn lambda_usd_per_million(memory: Memory, billed_ms: f64) -> f64 {
    (LAMBDA_REQUEST_USD + duration_usd(memory, billed_ms)) * 1e6
}

/// The duration part alone of one invocation billed `billed_ms` at `memory`.
pub(super) fn duration_usd(memory: Memory, billed_ms: f64) -> f64 {
    memory.gb() * billed_ms / 1000.0 * LAMBDA_ARM64_GB_SECOND_USD
}

/// What one memory size of a function cost and how fast it answered, for the recommendation.
pub(super) struct Candidate {
    pub memory: Memory,
    pub usd_per_million: f64,
    pub paced_p99_ms: f64,
}

/// The memory size that costs least per million requests (Lambda and DynamoDB) among those
/// whose paced warm p99 stays within `bound_ms` (Lambda Power Tuning's cost strategy, with a
/// latency bound of ours, over Lambda and DynamoDB rather than Lambda alone); the
/// smaller size on a tie. `None` when no size stays within the bound.
pub(super) fn recommend(candidates: &[Candidate], bound_ms: f64) -> Option<&Candidate> {
    candidates
        .iter()
        .filter(|c| c.paced_p99_ms <= bound_ms)
        .min_by(|a, b| {
            a.usd_per_million
                .total_cmp(&b.usd_per_million)
                .then(a.memory.cmp(&b.memory))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_follows_dynamodbs_rules_for_small_items() {
        let get = r#"{"TableName":"t","Key":{"pk":{"S":"USER#1"}},"ConsistentRead":true}"#;
        assert_eq!(Capacity::of("GetItem", get).rru, 1.0);
        let create = r#"{"TransactItems":[
            {"Put":{"Item":{"pk":{"S":"USER#1"}}}},
            {"Put":{"Item":{"pk":{"S":"EMAIL#a@b.c"}}}},
            {"Put":{"Item":{"pk":{"S":"anonymous#k"}}}}]}"#;
        assert_eq!(Capacity::of("TransactWriteItems", create).wru, 7.0);
        let rename = r#"{"Key":{"pk":{"S":"USER#1"}}}"#;
        assert_eq!(Capacity::of("UpdateItem", rename).wru, 2.0);
        let claim = r#"{"Item":{"pk":{"S":"anonymous#k"}}}"#;
        assert_eq!(Capacity::of("PutItem", claim).wru, 1.0);
    }

    #[test]
    fn lambda_bills_whole_milliseconds_of_gb_seconds() {
        assert_eq!(billed_ms(2.01), 3.0);
        // 1 GB for 1 s is one GB-second.
        let one = lambda_usd_per_million(Memory(1024), 1000.0);
        assert!((one - (0.20 + 13.3334)).abs() < 1e-9);
    }

    #[test]
    fn the_cheapest_size_within_the_bound_is_recommended() {
        let candidate = |mb, usd, p99| Candidate {
            memory: Memory(mb),
            usd_per_million: usd,
            paced_p99_ms: p99,
        };
        let sizes = [
            candidate(128, 0.5, 80.0),
            candidate(256, 0.6, 20.0),
            candidate(512, 0.9, 10.0),
        ];
        let best = recommend(&sizes, 50.0).map(|c| c.memory.0);
        assert_eq!(best, Some(256));
        assert!(recommend(&sizes, 5.0).is_none());
    }
}
