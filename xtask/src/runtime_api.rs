//! A Lambda Runtime API of our own on 127.0.0.1: hands events to a function process that polls
//! `invocation/next`, and returns what it posts back. It also tells how long each invocation
//! lasted as Lambda bills it: from the event handed out to the runtime's next poll, with which
//! a runtime signals that its invoke phase is over.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use crate::Result;

/// What the function answered to an invocation.
#[derive(Debug)]
pub enum Outcome {
    Response(Bytes),
    Error(Bytes),
    /// The function reported that it could not start.
    InitError(Bytes),
}

/// An answer, with the poll that took its event and when the event was handed out.
struct Answered {
    outcome: Outcome,
    handed_out: Option<(u64, Instant)>,
}

type Invocation = (Bytes, oneshot::Sender<Answered>);

/// An invocation handed out: where its answer goes, the poll that took it, and when.
type HandedOut = (oneshot::Sender<Answered>, u64, Instant);

struct Shared {
    queue: Mutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, HandedOut>>,
    init_error: watch::Sender<Option<Bytes>>,
    first_poll: watch::Sender<Option<Instant>>,
    /// How many times the function has polled `invocation/next`, and when it last did.
    polls: watch::Sender<(u64, Instant)>,
    next_id: AtomicU64,
    timeout: Duration,
}

/// The server; the value of `AWS_LAMBDA_RUNTIME_API` for a function is [`RuntimeApi::address`].
pub struct RuntimeApi {
    pub address: SocketAddr,
    invocations: mpsc::Sender<Invocation>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Serves on a free port of 127.0.0.1; each invocation gets `timeout` as its deadline.
    pub async fn start(timeout: Duration) -> Result<Self> {
        let (invocations, queue) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            pending: Mutex::new(HashMap::new()),
            init_error: watch::Sender::new(None),
            first_poll: watch::Sender::new(None),
            polls: watch::Sender::new((0, Instant::now())),
            next_id: AtomicU64::new(1),
            timeout,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            invocations,
            shared,
            server,
        })
    }

    /// When the function first asked for an invocation: the end of its init.
    pub async fn first_poll(&self, wait: Duration) -> Result<Instant> {
        let mut first = self.shared.first_poll.subscribe();
        let polled = tokio::time::timeout(wait, first.wait_for(Option::is_some)).await;
        let polled = polled.map_err(|_| format!("the function did not poll within {wait:?}"))?;
        Ok(polled
            .map_err(|_| "the runtime API stopped")?
            .unwrap_or_else(Instant::now))
    }

    /// Hands `event` to the function and waits, at most `wait`, for its answer.
    pub async fn invoke(&self, event: impl Into<Bytes>, wait: Duration) -> Result<Outcome> {
        Ok(self.answer(event.into(), wait).await?.outcome)
    }

    /// Hands `event` to the function, waits, at most `wait`, for its answer and its next poll,
    /// and returns the answer and the invocation's duration as Lambda bills it (unrounded):
    /// from the event handed out to that poll. For a runtime that polls one invocation at a
    /// time, as Lambda's classic environments run it: with several pollers, another's poll
    /// would end the duration.
    pub async fn invoke_billed(
        &self,
        event: impl Into<Bytes>,
        wait: Duration,
    ) -> Result<(Outcome, Duration)> {
        let answered = self.answer(event.into(), wait).await?;
        let Some((poll, handed_out)) = answered.handed_out else {
            return Err(format!("the function did not start: {:?}", answered.outcome).into());
        };
        let mut polls = self.shared.polls.subscribe();
        let next = tokio::time::timeout(wait, polls.wait_for(|(count, _)| *count > poll)).await;
        let next = next.map_err(|_| format!("the function did not poll again within {wait:?}"))?;
        let polled_at = next.map_err(|_| "the runtime API stopped")?.1;
        Ok((
            answered.outcome,
            polled_at.saturating_duration_since(handed_out),
        ))
    }

    async fn answer(&self, event: Bytes, wait: Duration) -> Result<Answered> {
        let (answer, outcome) = oneshot::channel();
        self.invocations
            .send((event, answer))
            .await
            .map_err(|_| "the runtime API stopped")?;
        let mut init = self.shared.init_error.subscribe();
        let answered = async {
            tokio::select! {
                outcome = outcome => outcome.map_err(|_| "the invocation was dropped".into()),
                failed = init.wait_for(Option::is_some) => {
                    let error = failed.map(|e| e.clone().unwrap_or_default()).unwrap_or_default();
                    Ok(Answered { outcome: Outcome::InitError(error), handed_out: None })
                }
            }
        };
        tokio::time::timeout(wait, answered)
            .await
            .map_err(|_| format!("no answer within {wait:?}"))?
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> (StatusCode, HeaderMap, Bytes) {
    let polled_at = Instant::now();
    shared
        .first_poll
        .send_if_modified(|first| first.is_none() && first.replace(polled_at).is_none());
    let mut poll = 0;
    shared.polls.send_modify(|(count, at)| {
        *count += 1;
        *at = polled_at;
        poll = *count;
    });
    let Some((event, answer)) = shared.queue.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let id = format!(
        "00000000-0000-4000-8000-{:012}",
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let deadline = SystemTime::now() + shared.timeout;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let header =
        |value: String| HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("-"));
    headers.insert("lambda-runtime-aws-request-id", header(id.clone()));
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(deadline_ms.to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:local"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header(format!("Root=1-00000000-{id}")),
    );
    shared
        .pending
        .lock()
        .await
        .insert(id, (answer, poll, Instant::now()));
    (StatusCode::OK, headers, event)
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Outcome::Response(body)).await
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Outcome::Error(body)).await
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared.init_error.send_replace(Some(body));
    StatusCode::ACCEPTED
}

async fn answer(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.pending.lock().await.remove(id) {
        Some((waiting, poll, handed_out)) => {
            let handed_out = Some((poll, handed_out));
            let _ = waiting.send(Answered {
                outcome,
                handed_out,
            });
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}
