//! A local stand-in for Lambda's event source mapping on a table's stream: reads the stream
//! through the DynamoDB Streams API from the oldest record (`TRIM_HORIZON`), hands the records
//! to the function in batches shaped as Lambda's DynamoDB events, and, when the function reports
//! a batch item failure, resumes from that record, dropping only the ones before it.

use std::collections::BTreeMap;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use serde_json::{Map, Value, json};

use crate::Result;

/// Records per invocation: the mapping's `BatchSize` in template.yaml.
pub const BATCH_SIZE: usize = 100;

pub struct StreamFeed {
    client: Client,
    stream_arn: String,
    /// Per shard: the iterator to read on with, and the records read but not yet done.
    shards: BTreeMap<String, Shard>,
}

#[derive(Default)]
struct Shard {
    iterator: Option<String>,
    pending: Vec<Value>,
    closed: bool,
}

/// What one invocation was handed and answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Value,
    pub response: Value,
}

impl StreamFeed {
    /// Opens the stream of `table` on the DynamoDB-compatible server at `endpoint`.
    pub async fn open(endpoint: &str, table: &str) -> Result<Self> {
        let client = Client::new(&crate::local_sdk(endpoint));
        let streams = client.list_streams().table_name(table).send().await?;
        let stream_arn = streams
            .streams()
            .first()
            .and_then(|s| s.stream_arn())
            .ok_or_else(|| format!("table {table} has no stream"))?
            .to_owned();
        Ok(Self {
            client,
            stream_arn,
            shards: BTreeMap::new(),
        })
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// Reads what the stream holds now, and hands each shard's records that are not done to
    /// `invoke`, up to [`BATCH_SIZE`] at a time, until every one is done or the function reports
    /// a failure (then the failed record and those after it stay for the next call). Returns
    /// what each invocation was handed and answered.
    pub async fn feed<F, Fut>(&mut self, mut invoke: F) -> Result<Vec<Delivery>>
    where
        F: FnMut(Value) -> Fut,
        Fut: Future<Output = Result<Value>>,
    {
        self.read().await?;
        let mut deliveries = Vec::new();
        for shard in self.shards.values_mut() {
            while !shard.pending.is_empty() {
                let batch: Vec<Value> = shard.pending.iter().take(BATCH_SIZE).cloned().collect();
                let event = json!({ "Records": batch });
                let response = invoke(event.clone()).await?;
                let failed = response["batchItemFailures"]
                    .as_array()
                    .and_then(|failures| failures.first())
                    .and_then(|failure| failure["itemIdentifier"].as_str())
                    .map(str::to_owned);
                let done = match &failed {
                    None => batch.len(),
                    Some(sequence_number) => batch
                        .iter()
                        .position(|r| r["dynamodb"]["SequenceNumber"] == sequence_number.as_str())
                        .ok_or_else(|| {
                            format!("the function reported {sequence_number}, not in its batch")
                        })?,
                };
                shard.pending.drain(..done);
                deliveries.push(Delivery { event, response });
                if failed.is_some() {
                    break;
                }
            }
        }
        Ok(deliveries)
    }

    /// Reads every shard's new records into its pending ones.
    async fn read(&mut self) -> Result<()> {
        let described = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await?;
        let shard_ids: Vec<String> = described
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for shard_id in shard_ids {
            let shard = self.shards.entry(shard_id.clone()).or_default();
            if shard.closed {
                continue;
            }
            if shard.iterator.is_none() {
                let iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.stream_arn)
                    .shard_id(&shard_id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await?;
                shard.iterator = iterator.shard_iterator().map(str::to_owned);
            }
            while let Some(iterator) = shard.iterator.clone() {
                let page = self
                    .client
                    .get_records()
                    .shard_iterator(iterator)
                    .send()
                    .await?;
                let records = page.records();
                shard
                    .pending
                    .extend(records.iter().map(|r| lambda_record(r, &self.stream_arn)));
                shard.iterator = page.next_shard_iterator().map(str::to_owned);
                if shard.iterator.is_none() {
                    shard.closed = true;
                }
                if records.is_empty() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A stream record as Lambda hands it to a function.
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record, stream_arn: &str) -> Value {
    let mut change = Map::new();
    if let Some(data) = record.dynamodb() {
        if let Some(at) = data.approximate_creation_date_time() {
            change.insert(
                "ApproximateCreationDateTime".into(),
                json!(at.as_secs_f64().floor()),
            );
        }
        for (name, image) in [
            ("Keys", data.keys()),
            ("NewImage", data.new_image()),
            ("OldImage", data.old_image()),
        ] {
            if let Some(image) = image {
                change.insert(name.into(), item(image));
            }
        }
        change.insert("SequenceNumber".into(), json!(data.sequence_number()));
        change.insert("SizeBytes".into(), json!(data.size_bytes()));
        change.insert(
            "StreamViewType".into(),
            json!(data.stream_view_type().map(|v| v.as_str())),
        );
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region(),
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    })
}

fn item(attributes: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        attributes
            .iter()
            .map(|(name, value)| (name.clone(), attribute(value)))
            .collect(),
    )
}

/// An attribute in DynamoDB's JSON, as Lambda writes it.
fn attribute(value: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 = |blob: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bs(bs) => json!({ "BS": bs.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        _ => json!({}),
    }
}
