//! An offline model of what Lambda and CloudWatch make of the functions, per samconfig.toml
//! environment: nothing is deployed, yet it answers "would this stack see its failures?".
//!
//! `tests/template/deployment.py` transforms and resolves the template for each environment (the
//! functions' environment as Lambda sets it, their log groups, the metric filters and the
//! alarms). The functions run as processes with that environment; what they write goes through
//! Lambda's log-level filter ([`lambda_logs`]), then the template's metric filters
//! ([`filter_pattern`]) and the embedded metric format; Lambda's and API Gateway's own metrics
//! are recorded per invocation and answer, as those services publish them. Each alarm then reads
//! its metrics (with [`metric_math`]) over one minute of traffic.
//!
//! Not modelled: durations (timing never decides a test here, so the p99 duration alarms see no
//! data), and the order of datapoints: a minute of traffic is either a single minute or
//! `sustained`, the same minute for as long as every alarm evaluates.

pub mod filter_pattern;
pub mod lambda_logs;
pub mod metric_math;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::workspace_root;

pub type Dimensions = BTreeMap<String, String>;

/// The metrics of one minute: every value recorded, by namespace, name and dimensions.
#[derive(Debug, Default)]
pub struct Metrics {
    values: BTreeMap<(String, String, Dimensions), Vec<f64>>,
}

impl Metrics {
    pub fn put(&mut self, namespace: &str, name: &str, dimensions: Dimensions, value: f64) {
        self.values
            .entry((namespace.to_owned(), name.to_owned(), dimensions))
            .or_default()
            .push(value);
    }

    /// A statistic of one metric, as an alarm reads it: `None` when it has no datapoint.
    pub fn statistic(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &Dimensions,
        statistic: &str,
    ) -> Option<f64> {
        let values =
            self.values
                .get(&(namespace.to_owned(), name.to_owned(), dimensions.clone()))?;
        let sum: f64 = values.iter().sum();
        Some(match statistic {
            "Sum" => sum,
            "SampleCount" => values.len() as f64,
            "Average" => sum / values.len() as f64,
            "Maximum" => values.iter().copied().fold(f64::MIN, f64::max),
            "Minimum" => values.iter().copied().fold(f64::MAX, f64::min),
            percentile => {
                let rank: f64 = percentile.strip_prefix('p')?.parse().ok()?;
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                let index = ((rank / 100.0) * sorted.len() as f64).ceil() as usize;
                sorted[index.clamp(1, sorted.len()) - 1]
            }
        })
    }

    /// The total of a metric over every dimension set that includes `dimensions`.
    pub fn total(&self, namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.values
            .iter()
            .filter(|((ns, n, dims), _)| {
                ns == namespace
                    && n == name
                    && dimensions
                        .iter()
                        .all(|(k, v)| dims.get(*k).map(String::as_str) == Some(*v))
            })
            .flat_map(|(_, values)| values)
            .sum()
    }
}

/// A function as an environment deploys it.
#[derive(Debug, Clone)]
pub struct DeployedFunction {
    pub name: String,
    pub version: String,
    /// What Lambda sets in its environment, the template's variables included.
    pub environment: BTreeMap<String, String>,
    pub system_log_level: String,
    pub log_group: String,
    pub reserved_concurrency: Option<u32>,
    /// The alarms its deployment rolls back on, by logical id.
    pub rollback_alarms: Vec<String>,
}

impl DeployedFunction {
    pub fn log_format(&self) -> &str {
        self.environment
            .get("AWS_LAMBDA_LOG_FORMAT")
            .map_or("Text", String::as_str)
    }

    pub fn log_level(&self) -> &str {
        self.environment
            .get("AWS_LAMBDA_LOG_LEVEL")
            .map_or("INFO", String::as_str)
    }
}

#[derive(Debug, Clone)]
struct MetricFilter {
    log_group: String,
    pattern: filter_pattern::Pattern,
    metrics: Vec<Value>,
}

/// One samconfig.toml environment as CloudFormation would deploy it.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub environment: String,
    pub stack: String,
    pub api_id: String,
    /// The API stage's burst: the requests it lets through at once.
    pub stage_burst: u32,
    /// By binary name.
    pub functions: BTreeMap<String, DeployedFunction>,
    metric_filters: Vec<MetricFilter>,
    /// Each alarm's resolved properties, by logical id.
    alarms: BTreeMap<String, Value>,
}

/// The alarms in alarm, each with the dimensions of every metric it reads.
pub type Firing = BTreeMap<String, Vec<Dimensions>>;

impl Deployment {
    /// Every environment of samconfig.toml, resolved by `tests/template/deployment.py` with the
    /// SAM CLI's Python (its `samtranslator`).
    pub fn all() -> Vec<Self> {
        let sam = xtask::tools::sam_tools().expect("the SAM tools install");
        let output = std::process::Command::new(sam.join("python"))
            .arg("tests/template/deployment.py")
            .current_dir(workspace_root())
            .env("SAM_CLI_TELEMETRY", "0")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "deployment.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let environments: BTreeMap<String, Value> =
            serde_json::from_slice(&output.stdout).expect("deployment.py prints JSON");
        environments
            .into_iter()
            .map(|(environment, deployed)| Self::from_json(environment, &deployed))
            .collect()
    }

    fn from_json(environment: String, deployed: &Value) -> Self {
        let text = |value: &Value| value.as_str().expect("a string").to_owned();
        let functions = deployed["functions"]
            .as_object()
            .expect("functions")
            .iter()
            .map(|(binary, function)| {
                let environment = function["environment"]
                    .as_object()
                    .expect("an environment")
                    .iter()
                    .map(|(k, v)| (k.clone(), text(v)))
                    .collect();
                let function = DeployedFunction {
                    name: text(&function["name"]),
                    version: text(&function["version"]),
                    environment,
                    system_log_level: text(&function["system_log_level"]),
                    log_group: text(&function["log_group"]),
                    reserved_concurrency: function["reserved_concurrency"]
                        .as_u64()
                        .map(|n| u32::try_from(n).expect("a concurrency")),
                    rollback_alarms: function["rollback_alarms"]
                        .as_array()
                        .expect("rollback alarms")
                        .iter()
                        .map(text)
                        .collect(),
                };
                (binary.clone(), function)
            })
            .collect();
        let metric_filters = deployed["metric_filters"]
            .as_array()
            .expect("metric filters")
            .iter()
            .map(|filter| MetricFilter {
                log_group: text(&filter["log_group"]),
                pattern: filter_pattern::Pattern::parse(
                    filter["pattern"].as_str().expect("a pattern"),
                )
                .expect("the template's filter patterns are ones the model reads"),
                metrics: filter["metrics"].as_array().expect("metrics").clone(),
            })
            .collect();
        Self {
            environment,
            stack: text(&deployed["stack"]),
            api_id: text(&deployed["api_id"]),
            stage_burst: deployed["stage_burst"]
                .as_str()
                .and_then(|b| b.parse().ok())
                .or_else(|| deployed["stage_burst"].as_u64().map(|b| b as u32))
                .expect("the stage's burst"),
            functions,
            metric_filters,
            alarms: deployed["alarms"]
                .as_object()
                .expect("alarms")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn function(&self, binary: &str) -> &DeployedFunction {
        &self.functions[binary]
    }

    pub fn alarm_names(&self) -> impl Iterator<Item = &String> {
        self.alarms.keys()
    }

    /// What CloudWatch makes of `output`, everything `binary`'s process wrote: the lines
    /// Lambda keeps go to its log group, whose metric filters count them, and the metric
    /// documents among them become metrics. Returns the lines kept.
    pub fn ingest(&self, binary: &str, output: &str, metrics: &mut Metrics) -> Vec<String> {
        let function = self.function(binary);
        let kept: Vec<String> = output
            .lines()
            .filter(|line| lambda_logs::kept(line, function.log_format(), function.log_level()))
            .map(str::to_owned)
            .collect();
        for line in &kept {
            for filter in self
                .metric_filters
                .iter()
                .filter(|f| f.log_group == function.log_group)
            {
                if filter.pattern.matches(line) {
                    for metric in &filter.metrics {
                        filtered_metric(metric, line, metrics);
                    }
                }
            }
            embedded_metrics(line, metrics);
        }
        kept
    }

    fn lambda_dimension_sets(&self, binary: &str) -> [Dimensions; 3] {
        let function = self.function(binary);
        let name = ("FunctionName".to_owned(), function.name.clone());
        let resource = ("Resource".to_owned(), format!("{}:live", function.name));
        let version = ("ExecutedVersion".to_owned(), function.version.clone());
        [
            [name.clone()].into(),
            [name.clone(), resource.clone()].into(),
            [name, resource, version].into(),
        ]
    }

    /// Lambda's metrics of one invocation through the `live` alias: `failed` when the function
    /// itself failed (a crash or a timeout), not when it answered an error.
    pub fn invoked(&self, binary: &str, failed: bool, metrics: &mut Metrics) {
        for dimensions in self.lambda_dimension_sets(binary) {
            metrics.put("AWS/Lambda", "Invocations", dimensions.clone(), 1.0);
            metrics.put(
                "AWS/Lambda",
                "Errors",
                dimensions,
                f64::from(u8::from(failed)),
            );
        }
    }

    /// Lambda's metrics of an invocation it throttled.
    pub fn throttled(&self, binary: &str, metrics: &mut Metrics) {
        for dimensions in self.lambda_dimension_sets(binary).into_iter().take(2) {
            metrics.put("AWS/Lambda", "Throttles", dimensions, 1.0);
        }
    }

    /// API Gateway's metrics of one answer.
    pub fn answered(&self, status: u16, metrics: &mut Metrics) {
        let api: Dimensions = [("ApiId".to_owned(), self.api_id.clone())].into();
        metrics.put("AWS/ApiGateway", "Count", api.clone(), 1.0);
        metrics.put(
            "AWS/ApiGateway",
            "4xx",
            api.clone(),
            f64::from(u8::from((400..500).contains(&status))),
        );
        metrics.put(
            "AWS/ApiGateway",
            "5xx",
            api,
            f64::from(u8::from(status >= 500)),
        );
    }

    /// DynamoDB's metrics of a write it throttled on the users table's index `index`.
    pub fn index_write_throttled(&self, index: &str, metrics: &mut Metrics) {
        let table = self.function("create-user").environment["USERS_TABLE"].clone();
        let dimensions: Dimensions = [
            ("TableName".to_owned(), table),
            ("GlobalSecondaryIndexName".to_owned(), index.to_owned()),
        ]
        .into();
        metrics.put("AWS/DynamoDB", "WriteThrottleEvents", dimensions, 1.0);
    }

    /// The alarms that `metrics` put in alarm: over a single minute, only those that need one
    /// breaching datapoint; `sustained`, every alarm whose datapoint breaches.
    pub fn firing(&self, metrics: &Metrics, sustained: bool) -> Firing {
        self.alarms
            .iter()
            .filter_map(|(name, alarm)| {
                let (value, read) = alarm_value(alarm, metrics);
                let needed = alarm["DatapointsToAlarm"]
                    .as_u64()
                    .or_else(|| alarm["EvaluationPeriods"].as_u64())
                    .unwrap_or(1);
                let threshold = number(&alarm["Threshold"]);
                let breaching = value.is_some_and(|value| {
                    match alarm["ComparisonOperator"].as_str().unwrap_or_default() {
                        "GreaterThanThreshold" => value > threshold,
                        "GreaterThanOrEqualToThreshold" => value >= threshold,
                        "LessThanThreshold" => value < threshold,
                        "LessThanOrEqualToThreshold" => value <= threshold,
                        other => panic!("{name}: unknown ComparisonOperator {other}"),
                    }
                });
                assert_eq!(
                    alarm["TreatMissingData"], "notBreaching",
                    "{name}: the model reads missing data as not breaching"
                );
                (breaching && (needed == 1 || sustained)).then(|| (name.clone(), read))
            })
            .collect()
    }
}

/// An alarm's datapoint, and the dimensions of each metric it read.
fn alarm_value(alarm: &Value, metrics: &Metrics) -> (Option<f64>, Vec<Dimensions>) {
    let read_stat = |metric: &Value, statistic: &str| {
        let dimensions: Dimensions = metric["Dimensions"]
            .as_array()
            .map(|dims| {
                dims.iter()
                    .map(|d| (text(&d["Name"]), text(&d["Value"])))
                    .collect()
            })
            .unwrap_or_default();
        let value = metrics.statistic(
            &text(&metric["Namespace"]),
            &text(&metric["MetricName"]),
            &dimensions,
            statistic,
        );
        (value, dimensions)
    };
    let Some(queries) = alarm["Metrics"].as_array() else {
        let statistic = alarm["Statistic"]
            .as_str()
            .or_else(|| alarm["ExtendedStatistic"].as_str())
            .expect("a statistic");
        let (value, dimensions) = read_stat(alarm, statistic);
        return (value, vec![dimensions]);
    };
    let mut values = BTreeMap::new();
    let mut read = Vec::new();
    let mut returned = None;
    for query in queries {
        let id = text(&query["Id"]);
        let value = if let Some(stat) = query.get("MetricStat") {
            let (value, dimensions) =
                read_stat(&stat["Metric"], stat["Stat"].as_str().expect("a Stat"));
            read.push(dimensions);
            value
        } else {
            let expression = query["Expression"].as_str().expect("an Expression");
            metric_math::evaluate(expression, &values)
                .unwrap_or_else(|e| panic!("the model cannot read {expression}: {e}"))
        };
        if query["ReturnData"].as_bool().unwrap_or(true) {
            returned = value;
        }
        values.insert(id, value);
    }
    (returned, read)
}

/// A metric filter's metric, for a log event it matched: its value and dimensions from the
/// event's fields; none when a dimension's field is missing.
fn filtered_metric(metric: &Value, event: &str, metrics: &mut Metrics) {
    let value = text(&metric["value"]);
    let value = if value.starts_with("$.") {
        filter_pattern::select_text(event, &value).and_then(|v| v.parse().ok())
    } else {
        value.parse().ok()
    };
    let dimensions: Option<Dimensions> = metric["dimensions"]
        .as_object()
        .map(|dims| {
            dims.iter()
                .map(|(key, selector)| {
                    let selector = selector.as_str().unwrap_or_default();
                    filter_pattern::select_text(event, selector).map(|v| (key.clone(), v))
                })
                .collect()
        })
        .unwrap_or(Some(Dimensions::new()));
    if let (Some(value), Some(dimensions)) = (value, dimensions) {
        metrics.put(
            &text(&metric["namespace"]),
            &text(&metric["name"]),
            dimensions,
            value,
        );
    }
}

/// The metrics of a CloudWatch embedded metric format document, if `line` is one.
fn embedded_metrics(line: &str, metrics: &mut Metrics) {
    let Ok(document) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let Some(directives) = document["_aws"]["CloudWatchMetrics"].as_array() else {
        return;
    };
    for directive in directives {
        let namespace = text(&directive["Namespace"]);
        for set in directive["Dimensions"].as_array().into_iter().flatten() {
            let dimensions: Option<Dimensions> = set
                .as_array()
                .into_iter()
                .flatten()
                .map(|name| {
                    let name = name.as_str()?;
                    Some((name.to_owned(), document[name].as_str()?.to_owned()))
                })
                .collect();
            let Some(dimensions) = dimensions else {
                continue;
            };
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let name = text(&metric["Name"]);
                let values = match &document[&name] {
                    Value::Array(many) => many.iter().filter_map(Value::as_f64).collect(),
                    one => one.as_f64().into_iter().collect::<Vec<_>>(),
                };
                for value in values {
                    metrics.put(&namespace, &name, dimensions.clone(), value);
                }
            }
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|v| v.parse().ok()))
        .expect("a number")
}
