//! A proxy on 127.0.0.1 between the functions and a DynamoDB-compatible server (or moto's
//! EventBridge and SQS), which answers chosen requests with the faults these services show in
//! production instead of passing them on: throttling, server errors, cancelled transactions,
//! stalls, lost answers, and `PutEvents` calls that succeed with some entries rejected. It keeps
//! every request body it saw, so a test can search what a function sent.
//!
//! For the benchmark it can also stand for the network to DynamoDB ([`Network`]): TLS with a
//! certificate of the run's own CA, and a round trip's delay on every request and on each step of
//! a new connection's set-up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::Result;

/// The largest request the proxy reads; DynamoDB's own limit for a transaction is 4 MB.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// An error answer in DynamoDB's JSON protocol.
#[derive(Debug, Clone)]
pub struct ErrorAnswer {
    pub status: u16,
    pub body: Value,
}

impl ErrorAnswer {
    fn new(status: u16, error_type: &str) -> Self {
        Self {
            status,
            body: json!({ "__type": error_type, "message": "injected by the fault proxy" }),
        }
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body.to_string()).into_response();
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        response
    }
}

const INTERNAL_SERVER_ERROR: &str = "com.amazonaws.dynamodb.v20120810#InternalServerError";

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answers with this error instead of passing the request on.
    Error(ErrorAnswer),
    /// Holds the request this long, then drops it without passing it on: a server or network
    /// that does not answer in time.
    Stall(Duration),
    /// Passes the request on, then answers 500 instead of passing the server's answer back: the
    /// write happened, but the client cannot know.
    LoseAnswer,
    /// Holds each request whose body contains `containing` until the gate opens, then passes it
    /// on: a call still in flight while the test does something else.
    Hold { gate: Gate, containing: String },
    /// For `PutEvents`: the entries whose `Detail` contains `containing` are not passed on, and
    /// the answer reports them failed with `code` (`FailedEntryCount`), as EventBridge does
    /// inside a successful call; the other entries are published.
    RejectEntries { containing: String, code: String },
}

/// What a held request waits for; [`Gate::open`] lets every held request, and every later one,
/// through.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn opened(&self) {
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }
}

impl Fault {
    pub fn throttling() -> Self {
        Self::error(400, "com.amazon.coral.availability#ThrottlingException")
    }

    pub fn provisioned_throughput_exceeded() -> Self {
        Self::error(
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        )
    }

    pub fn internal_server_error() -> Self {
        Self::error(500, INTERNAL_SERVER_ERROR)
    }

    /// The credentials the request was signed with have expired.
    pub fn expired_token() -> Self {
        Self::error(400, "com.amazon.coral.service#ExpiredTokenException")
    }

    pub fn service_unavailable() -> Self {
        Self::error(
            503,
            "com.amazon.coral.availability#ServiceUnavailableException",
        )
    }

    /// `TransactionCanceledException`, with one cancellation reason code per item, such as
    /// `None`, `ConditionalCheckFailed`, `TransactionConflict` or `ThrottlingError`.
    pub fn transaction_cancelled(reasons: &[&str]) -> Self {
        let mut answer = ErrorAnswer::new(
            400,
            "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        );
        answer.body["message"] = Value::from(format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            reasons.join(", ")
        ));
        answer.body["CancellationReasons"] =
            reasons.iter().map(|code| json!({ "Code": code })).collect();
        Self::Error(answer)
    }

    fn error(status: u16, error_type: &str) -> Self {
        Self::Error(ErrorAnswer::new(status, error_type))
    }
}

/// Which requests a fault is for, and how many more of them get it.
#[derive(Debug)]
struct Rule {
    /// The DynamoDB operation (`PutItem`, `TransactWriteItems`, ...); `None` for every one.
    operation: Option<String>,
    fault: Fault,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct Faults {
    rules: Vec<Rule>,
    injected: u32,
}

impl Faults {
    /// The fault for a request for `operation` with `body`, if a rule has one left. A rule that
    /// rejects entries or holds requests applies only to a body that contains its text.
    fn take(&mut self, operation: &str, body: &[u8]) -> Option<Fault> {
        let index = self.rules.iter().position(|rule| {
            rule.remaining != Some(0)
                && rule.operation.as_deref().is_none_or(|o| o == operation)
                && match &rule.fault {
                    Fault::RejectEntries { containing, .. } | Fault::Hold { containing, .. } => {
                        String::from_utf8_lossy(body).contains(containing.as_str())
                    }
                    _ => true,
                }
        })?;
        let rule = &mut self.rules[index];
        if let Some(remaining) = &mut rule.remaining {
            *remaining -= 1;
        }
        self.injected += 1;
        Some(rule.fault.clone())
    }
}

/// The network the proxy stands for; the default, nothing but loopback, is the tests'.
#[derive(Default)]
pub struct Network {
    /// One round trip to DynamoDB, its service time included. Every request is answered no
    /// sooner than this after it arrived, the server's own time counted within it (and only
    /// what the server takes beyond it added); a new connection waits it once for its TCP
    /// set-up and once more for its TLS handshake (TLS 1.3 takes one round trip), before the
    /// proxy reads from it.
    pub round_trip: Duration,
    /// Serves HTTPS with this acceptor's certificate instead of plain HTTP.
    pub tls: Option<TlsAcceptor>,
}

struct Upstream {
    base: Uri,
    round_trip: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
    faults: Mutex<Faults>,
    /// Every request's operation and body, in arrival order.
    seen: Mutex<Vec<(String, Bytes)>>,
    /// How much longer than a round trip the server took to answer the requests passed on as
    /// they were, in all.
    overrun: Mutex<Duration>,
}

/// The proxy; clients use [`FaultProxy::endpoint`] as their DynamoDB endpoint.
pub struct FaultProxy {
    pub endpoint: String,
    upstream: Arc<Upstream>,
}

impl FaultProxy {
    /// Serves on a free port of 127.0.0.1, passing requests on to `upstream` (`http://...`).
    pub async fn start(upstream: &str) -> Result<Self> {
        Self::start_with(upstream, Network::default()).await
    }

    /// [`FaultProxy::start`], in front of `network`; the endpoint is `https://` with TLS.
    pub async fn start_with(upstream: &str, network: Network) -> Result<Self> {
        let upstream = Arc::new(Upstream {
            base: upstream.parse()?,
            round_trip: network.round_trip,
            client: Client::builder(TokioExecutor::new()).build_http(),
            faults: Mutex::default(),
            seen: Mutex::default(),
            overrun: Mutex::default(),
        });
        let app = Router::new()
            .fallback(proxy)
            .with_state(Arc::clone(&upstream));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address: SocketAddr = listener.local_addr()?;
        let scheme = if network.tls.is_some() {
            "https"
        } else {
            "http"
        };
        if network.tls.is_none() && network.round_trip.is_zero() {
            tokio::spawn(async move { axum::serve(listener, app).await });
        } else {
            tokio::spawn(serve_network(listener, app, network));
        }
        Ok(Self {
            endpoint: format!("{scheme}://{address}"),
            upstream,
        })
    }

    /// Answers the next `times` requests for `operation` (every operation for `None`) with
    /// `fault`; with `times` of `None`, every one until [`FaultProxy::clear`].
    pub fn inject(&self, operation: Option<&str>, fault: Fault, times: Option<u32>) {
        self.faults().rules.push(Rule {
            operation: operation.map(str::to_owned),
            fault,
            remaining: times,
        });
    }

    /// Passes every request on from now on.
    pub fn clear(&self) {
        self.faults().rules.clear();
    }

    /// How many requests were answered with a fault so far.
    pub fn injected(&self) -> u32 {
        self.faults().injected
    }

    /// The operations requested so far, in order, faulted or not.
    pub fn operations(&self) -> Vec<String> {
        self.upstream
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(operation, _)| operation.clone())
            .collect()
    }

    /// The bodies of the requests for `operation` (every one for `None`) so far, as text.
    pub fn requests(&self, operation: Option<&str>) -> Vec<String> {
        self.upstream
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(op, _)| operation.is_none_or(|o| o == op))
            .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
            .collect()
    }

    /// How much longer than the round trip the server behind the proxy took, in all, to answer
    /// the requests passed on unchanged: the time it adds to what DynamoDB would take.
    pub fn server_overrun(&self) -> Duration {
        *self
            .upstream
            .overrun
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many requests the proxy has seen so far.
    pub fn request_count(&self) -> usize {
        self.upstream
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The operation and body, as text, of every request from the `first`-th (counted from 0).
    pub fn requests_since(&self, first: usize) -> Vec<(String, String)> {
        let seen = self
            .upstream
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.get(first..)
            .unwrap_or_default()
            .iter()
            .map(|(op, body)| (op.clone(), String::from_utf8_lossy(body).into_owned()))
            .collect()
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.upstream
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Accepts connections as [`Network`] says: each waits a round trip for its TCP set-up, then,
/// with TLS, one more before its handshake, and is then served over HTTP/1.1.
async fn serve_network(listener: TcpListener, app: Router, network: Network) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, tls, round_trip) = (app.clone(), network.tls.clone(), network.round_trip);
        tokio::spawn(async move {
            delay(round_trip).await;
            match tls {
                Some(acceptor) => {
                    delay(round_trip).await;
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        serve_connection(stream, app).await;
                    }
                }
                None => serve_connection(tcp, app).await,
            }
        });
    }
}

async fn serve_connection(io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, app: Router) {
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .await;
}

/// Waits `duration` to within the kernel timer's slack (tens of microseconds): tokio's own timer
/// counts whole milliseconds and would round a 2 ms wait up to nearly 3.
async fn delay(duration: Duration) {
    if !duration.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(duration)).await;
    }
}

/// Answers `request` a round trip after it arrived in full at the soonest: the round trip
/// stands for DynamoDB's service time and the network both.
async fn proxy(State(upstream): State<Arc<Upstream>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let arrived = std::time::Instant::now();
    let response = serve(&upstream, parts, body, arrived).await;
    delay(upstream.round_trip.saturating_sub(arrived.elapsed())).await;
    response
}

async fn serve(
    upstream: &Upstream,
    parts: axum::http::request::Parts,
    body: Bytes,
    arrived: std::time::Instant,
) -> Response {
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|target| target.to_str().ok())
        .and_then(|target| target.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    upstream
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((operation.clone(), body.clone()));
    let fault = upstream
        .faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take(&operation, &body);
    if let Some(Fault::Hold { gate, .. }) = &fault {
        gate.opened().await;
    }
    match fault {
        Some(Fault::RejectEntries { containing, code }) => {
            reject_entries(upstream, parts, body, &containing, &code)
                .await
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Some(Fault::Error(answer)) => answer.into_response(),
        Some(Fault::Stall(duration)) => {
            tokio::time::sleep(duration).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Some(Fault::LoseAnswer) => {
            // The server's answer is read in full, so the write is done, and then dropped.
            if let Ok(answer) = pass_on(upstream, parts, body).await {
                let _ = answer.into_body().collect().await;
            }
            ErrorAnswer::new(500, INTERNAL_SERVER_ERROR).into_response()
        }
        Some(Fault::Hold { .. }) | None => {
            let answer = pass_on(upstream, parts, body).await;
            *upstream
                .overrun
                .lock()
                .unwrap_or_else(PoisonError::into_inner) +=
                arrived.elapsed().saturating_sub(upstream.round_trip);
            answer.unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
    }
}

/// Passes on a `PutEvents` call without the entries whose `Detail` contains `containing`, and
/// answers with their results spliced back in as failures.
async fn reject_entries(
    upstream: &Upstream,
    mut parts: axum::http::request::Parts,
    body: Bytes,
    containing: &str,
    code: &str,
) -> Result<Response> {
    let mut request: Value = serde_json::from_slice(&body)?;
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let rejected: Vec<bool> = entries
        .iter()
        .map(|entry| {
            entry["Detail"]
                .as_str()
                .is_some_and(|d| d.contains(containing))
        })
        .collect();
    let kept: Vec<Value> = entries
        .iter()
        .zip(&rejected)
        .filter(|(_, rejected)| !**rejected)
        .map(|(entry, _)| entry.clone())
        .collect();
    let mut published = if kept.is_empty() {
        Vec::new()
    } else {
        request["Entries"] = Value::Array(kept);
        let body = Bytes::from(serde_json::to_vec(&request)?);
        parts.headers.remove("content-length");
        let answer = pass_on(upstream, parts, body).await?;
        let bytes = answer.into_body().collect().await?.to_bytes();
        let answer: Value = serde_json::from_slice(&bytes)?;
        answer["Entries"].as_array().cloned().unwrap_or_default()
    }
    .into_iter();
    let results: Vec<Value> = rejected
        .iter()
        .map(|rejected| match rejected {
            true => json!({ "ErrorCode": code, "ErrorMessage": "rejected by the fault proxy" }),
            false => published
                .next()
                .unwrap_or_else(|| json!({ "ErrorCode": "InternalFailure" })),
        })
        .collect();
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    let mut response = json!({ "FailedEntryCount": failed, "Entries": results })
        .to_string()
        .into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(response)
}

async fn pass_on(
    upstream: &Upstream,
    mut parts: axum::http::request::Parts,
    body: Bytes,
) -> Result<Response> {
    let mut uri = upstream.base.clone().into_parts();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    parts.uri = Uri::from_parts(uri)?;
    let request = axum::http::Request::from_parts(parts, Full::new(body));
    let answer = upstream.client.request(request).await?;
    Ok(answer.map(Body::new))
}
