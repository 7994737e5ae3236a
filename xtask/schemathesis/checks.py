"""Schemathesis hooks for `cargo xtask test` (see schemathesis.toml): a check of our own, and
the requests `cargo xtask dev` cannot carry."""

import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

# The statuses that call a request malformed.
REFUSALS = {400, 415, 422}

# Refusals a request the schema allows may still get: a cursor is any string to the schema, but
# only the ones the service signed are accepted; and an idempotency key answers for the first
# body it came with, which depends on what was sent before, not on this request.
STATEFUL_REFUSALS = {"invalid_cursor", "idempotency_key_reused"}


@schemathesis.check
def valid_requests_are_accepted(ctx, response, case):
    """A request the schema allows is never refused as malformed (400, 415 or 422)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if is_unexpected_http_status_case(case) or response.status_code not in REFUSALS:
        return None
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if code in STATEFUL_REFUSALS:
        return None
    raise AssertionError(
        f"A request the schema allows was refused: {response.status_code} {code}"
    )


@schemathesis.hook
def filter_body(ctx, body):
    """Leaves out bodies that are not UTF-8.

    `cargo lambda watch` answers them with its own 500 before any function runs; API Gateway
    passes them on base64-encoded, which the test suite's events cover.
    """
    if isinstance(body, bytes):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
