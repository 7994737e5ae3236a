//! The functions' handlers: parse the request, call the service, render the outcome.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use lambda_http::{Context, LambdaEvent};
use tracing::Instrument;

use crate::clock::Clock;
use crate::cursor::CursorKey;
use crate::domain::UserId;
use crate::http::{self, ApiError, ListQuery, Reply, Request, Resource, Response};
use crate::idempotency::Idempotent;
use crate::service::{self, CreateContext};
use crate::store::UserStore;
use crate::telemetry;

pub async fn create_user(
    store: &impl UserStore,
    clock: &impl Clock,
    event: LambdaEvent<Request>,
) -> Result<Response, Infallible> {
    let work = create(store, clock, &event.payload);
    Ok(serve(&event, work).await)
}

pub async fn get_user(
    store: &impl UserStore,
    event: LambdaEvent<Request>,
) -> Result<Response, Infallible> {
    Ok(serve(&event, get(store, &event.payload)).await)
}

pub async fn list_users(
    store: &impl UserStore,
    cursor_key: &CursorKey,
    event: LambdaEvent<Request>,
) -> Result<Response, Infallible> {
    Ok(serve(&event, list(store, cursor_key, &event.payload)).await)
}

pub async fn update_user(
    store: &impl UserStore,
    clock: &impl Clock,
    event: LambdaEvent<Request>,
) -> Result<Response, Infallible> {
    Ok(serve(&event, update(store, clock, &event.payload)).await)
}

pub async fn delete_user(
    store: &impl UserStore,
    event: LambdaEvent<Request>,
) -> Result<Response, Infallible> {
    Ok(serve(&event, delete(store, &event.payload)).await)
}

/// Runs a request's work in its span, answers, writes the request's one summary line (never a
/// body or an email) and its metrics. The summary line of a 5xx is written at ERROR, so that
/// every log level keeps what the 5xx alarms count; any other at INFO.
async fn serve(
    event: &LambdaEvent<Request>,
    work: impl Future<Output = Result<Reply, ApiError>>,
) -> Response {
    let started = Instant::now();
    // Boxed, so that the futures of the handlers' callers stay shallow enough for the compiler
    // to lay out; one allocation per request.
    let work = Box::pin(work);
    let request_id = &event.context.request_id;
    telemetry::per_request(request_id, async {
        let span = tracing::info_span!("request", cold_start = telemetry::cold_start());
        async {
            let outcome = guarded(&event.context, work).await;
            let response = http::render(&outcome, request_id);
            let route = event.payload.route_key.as_deref().unwrap_or_default();
            let status = response.status_code;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let code = outcome.as_ref().err().map(ApiError::code);
            if let Some(code) = code {
                telemetry::count(telemetry::metric::ERRORS, &[("code", code)], 1);
            }
            if status >= 500 {
                tracing::error!(route, status, code, duration_ms, "request done");
            } else {
                tracing::info!(route, status, code, duration_ms, "request done");
            }
            response
        }
        .instrument(span)
        .await
    })
    .await
}

async fn create(
    store: &impl UserStore,
    clock: &impl Clock,
    request: &Request,
) -> Result<Reply, ApiError> {
    let Resource::CreateUser = http::route(request)? else {
        return Err(ApiError::RouteNotFound);
    };
    let body = http::json_body(request, http::JSON)?;
    let key = http::idempotency_key(request)?;
    let new_user = http::new_user(&body)?;
    let caller = match key {
        Some(_) => http::caller(request)?,
        None => None,
    };
    let context = CreateContext {
        now: clock.now(),
        idempotency: key.as_ref().map(|key| Idempotent {
            key,
            caller: caller.as_deref(),
            body: &body,
        }),
    };
    let user = service::create_user(store, new_user, context).await?;
    Ok(Reply::Created(user))
}

async fn get(store: &impl UserStore, request: &Request) -> Result<Reply, ApiError> {
    let Resource::GetUser { id } = http::route(request)? else {
        return Err(ApiError::RouteNotFound);
    };
    let id = user_id(id)?;
    Ok(Reply::Found(service::get_user(store, id).await?))
}

async fn list(
    store: &impl UserStore,
    cursor_key: &CursorKey,
    request: &Request,
) -> Result<Reply, ApiError> {
    let Resource::ListUsers = http::route(request)? else {
        return Err(ApiError::RouteNotFound);
    };
    let query = ListQuery::parse(request, cursor_key)?;
    let page = service::list_users(store, query.before, query.limit).await?;
    let next_cursor = page
        .more
        .then(|| page.users.last().map(|last| cursor_key.encode(last.id())))
        .flatten();
    Ok(Reply::Page {
        items: page.users,
        next_cursor,
    })
}

async fn update(
    store: &impl UserStore,
    clock: &impl Clock,
    request: &Request,
) -> Result<Reply, ApiError> {
    let Resource::UpdateUser { id } = http::route(request)? else {
        return Err(ApiError::RouteNotFound);
    };
    // 415 and 413 come before the path's 400, a body's own 400 after it.
    let body = match http::json_body(request, http::JSON_OR_MERGE_PATCH) {
        Err(error @ (ApiError::UnsupportedMediaType | ApiError::PayloadTooLarge)) => {
            return Err(error);
        }
        body => body,
    };
    let id = user_id(id)?;
    let patch = http::user_patch(&body?)?;
    let precondition = http::if_match(request);
    let user = service::update_user(store, id, &patch, precondition.as_ref(), clock.now()).await?;
    Ok(Reply::Updated(user))
}

/// A body on DELETE is ignored: its size and media type never refuse the request.
async fn delete(store: &impl UserStore, request: &Request) -> Result<Reply, ApiError> {
    let Resource::DeleteUser { id } = http::route(request)? else {
        return Err(ApiError::RouteNotFound);
    };
    let id = user_id(id)?;
    let precondition = http::if_match(request);
    service::delete_user(store, id, precondition.as_ref()).await?;
    Ok(Reply::Deleted)
}

/// The path's user id: `400 invalid_id` unless it can be one of ours.
fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::InvalidId)
}

/// The function timeout of template.yaml: the deadline local runs give each invocation.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// What is kept of the invocation's time to send the answer after the work gave up.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// Runs a request's work within the invocation's deadline, less [`ANSWER_MARGIN`], so a slow
/// DynamoDB gets the contract's `503` rather than a Lambda timeout; and turns a panic into
/// `500 internal`, so the execution environment keeps serving.
async fn guarded(
    context: &Context,
    work: impl Future<Output = Result<Reply, ApiError>>,
) -> Result<Reply, ApiError> {
    let work = AssertUnwindSafe(work).catch_unwind();
    let finished = match work_budget(context) {
        // Too late to start: a write begun now could not be answered.
        Some(budget) if budget.is_zero() => {
            tracing::error!("the invocation had no time left to start");
            return Err(ApiError::Unavailable);
        }
        Some(budget) => tokio::time::timeout(budget, work).await,
        None => Ok(work.await),
    };
    match finished {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => {
            tracing::error!("request handling panicked");
            Err(ApiError::Internal)
        }
        Err(_) => {
            tracing::error!("the request ran out of time");
            Err(ApiError::Unavailable)
        }
    }
}

/// How long the request's work may run: the time left until the invocation's deadline, less
/// [`ANSWER_MARGIN`]. `None` when the runtime gave no deadline or one already past, as
/// `cargo lambda watch` does (a fixed 600000 ms, in 1970): Lambda never runs a handler after its
/// deadline. The deadline is the runtime's, so it is read on the system's clock.
fn work_budget(context: &Context) -> Option<Duration> {
    let deadline = UNIX_EPOCH.checked_add(Duration::from_millis(context.deadline))?;
    let left = deadline.duration_since(SystemTime::now()).ok()?;
    (!left.is_zero()).then(|| left.saturating_sub(ANSWER_MARGIN))
}
