"""The benchmark's peer: the same five endpoints written the way a Python team would, with boto3
under awslambdaric, against the same tables and items as the Rust functions. A create, with an
idempotency key or without, is one TransactWriteItems: the design the Rust create is moving to."""

import base64
import hashlib
import json
import os
import re
import secrets
import time
from datetime import datetime, timezone

import boto3
from botocore.exceptions import ClientError

dynamodb = boto3.client("dynamodb")
USERS_TABLE = os.environ["USERS_TABLE"]
IDEMPOTENCY_TABLE = os.environ["IDEMPOTENCY_TABLE"]
EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Fresh reads for a write that found the user changed since it read it.
ATTEMPTS = 3
# How long a completed create is remembered under its idempotency key.
RETENTION_SECONDS = 24 * 60 * 60


def respond(status, body, headers=None):
    if body is None:
        return {"statusCode": status, "headers": {"cache-control": "no-store"}, "body": ""}
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store", **(headers or {})},
        "body": json.dumps(body),
    }


def error(status, code, message, context):
    return respond(status, {"error": {"code": code, "message": message, "request_id": context.aws_request_id}})


def new_id(millis):
    value = (millis << 80) | secrets.randbits(80)
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def rfc3339(millis):
    return datetime.fromtimestamp(millis / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def user(item):
    body = {key: item[key]["S"] for key in ("id", "name", "email", "created_at")}
    body["updated_at"] = item.get("updated_at", item["created_at"])["S"]
    return body


def version(item):
    return int(item.get("version", {"N": "1"})["N"])


def etag(item):
    return {"etag": f'"v{version(item)}"'}


def path_id(event):
    user_id = (event.get("pathParameters") or {}).get("id", "")
    if len(user_id) != 26 or any(c not in CROCKFORD for c in user_id):
        return None
    return user_id


def json_object(event):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def if_match(event, item):
    """Whether the request's if-match, if any, names the item's version (strong tags only)."""
    wanted = (event.get("headers") or {}).get("if-match")
    if wanted is None or wanted.strip() == "*":
        return True
    return f'"v{version(item)}"' in (tag.strip() for tag in wanted.split(","))


def version_condition(item):
    """The write's condition that the user item still holds the version that was read."""
    values = {":version": {"N": str(version(item))}}
    if "version" in item:
        return "#version = :version", values
    return "attribute_exists(pk) AND (attribute_not_exists(#version) OR #version = :version)", values


def cancelled_by(error):
    """Which items of a cancelled transaction failed their condition, by position."""
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        raise error
    reasons = error.response.get("CancellationReasons") or []
    return [i for i, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"]


def read_user(user_id):
    found = dynamodb.get_item(TableName=USERS_TABLE, Key={"pk": {"S": f"USER#{user_id}"}}, ConsistentRead=True)
    return found.get("Item")


def request_body(event):
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def idempotency_key(event):
    """The request's idempotency-key, scoped to the caller as stored; "" when invalid."""
    key = (event.get("headers") or {}).get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 128 or any(not " " <= c <= "~" for c in key):
        return ""
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    scope = hashlib.sha256(claims["sub"].encode()).hexdigest() if "sub" in claims else "anonymous"
    return f"{scope}#{key}"


def create_user(event, context):
    data = json_object(event)
    if data is None:
        return error(400, "invalid_json", "the body is not a JSON object", context)
    name = str(data.get("name", "")).strip()
    email = str(data.get("email", "")).strip()
    if not 1 <= len(name) <= 100 or not EMAIL.match(email):
        return error(422, "validation_failed", "name or email is invalid", context)
    scoped_key = idempotency_key(event)
    if scoped_key == "":
        return error(400, "invalid_idempotency_key", "idempotency-key: must be 1 to 128 printable ASCII characters",
                     context)
    millis = int(time.time() * 1000)
    user_id = new_id(millis)
    created_at = rfc3339(millis)
    item = {"pk": f"USER#{user_id}", "id": user_id, "name": name, "email": email,
            "created_at": created_at, "updated_at": created_at, "listing": "USER"}
    if scoped_key is not None:
        item["idempotency_pk"] = scoped_key
    item = {k: {"S": v} for k, v in item.items()} | {"version": {"N": "1"}}
    writes = [
        {"Put": {"TableName": USERS_TABLE, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"TableName": USERS_TABLE,
                 "Item": {"pk": {"S": f"EMAIL#{email.lower()}"}, "user_id": {"S": user_id}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
    ]
    fingerprint = hashlib.sha256(request_body(event)).hexdigest()
    if scoped_key is not None:
        # The key's record goes in the same transaction as the user: one round trip, and no
        # record without its user or user without its record.
        now = millis // 1000
        writes.append({"Put": {
            "TableName": IDEMPOTENCY_TABLE,
            "Item": {"pk": {"S": scoped_key}, "fingerprint": {"S": fingerprint}, "state": {"S": "completed"},
                     "user_id": {"S": user_id}, "in_flight_until": {"N": str(millis)},
                     "expires_at": {"N": str(now + RETENTION_SECONDS)}},
            "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
        }})
    try:
        dynamodb.transact_write_items(TransactItems=writes)
    except ClientError as e:
        failed = cancelled_by(e)
        if 2 in failed:
            return replay(scoped_key, fingerprint, context)
        if 1 in failed:
            return error(409, "email_taken", "email: already belongs to another user", context)
        raise
    return respond(201, user(item), {"location": f"/users/{user_id}", **etag(item)})


def replay(scoped_key, fingerprint, context):
    """The answer to a create whose key is already taken: the first create's user, if it had the
    same body."""
    found = dynamodb.get_item(TableName=IDEMPOTENCY_TABLE, Key={"pk": {"S": scoped_key}}, ConsistentRead=True)
    record = found.get("Item")
    if record is None or record["fingerprint"]["S"] != fingerprint:
        return error(422, "idempotency_key_reused", "idempotency-key: was used with another body", context)
    user_id = record["user_id"]["S"]
    item = read_user(user_id)
    if item is None:
        return error(404, "not_found", "the user this key created is gone", context)
    return respond(201, user(item), {"location": f"/users/{user_id}", **etag(item)})


def get_user(event, context):
    user_id = path_id(event)
    if user_id is None:
        return error(400, "invalid_id", "id: not a valid user id", context)
    item = read_user(user_id)
    if item is None:
        return error(404, "not_found", "no such user", context)
    return respond(200, user(item), etag(item))


def list_users(event, context):
    query = event.get("queryStringParameters") or {}
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        return error(400, "invalid_limit", "limit: must be an integer from 1 to 100", context)
    request = {"TableName": USERS_TABLE, "IndexName": "ByNewest", "Limit": limit + 1, "ScanIndexForward": False,
               "KeyConditionExpression": "#l = :l", "ExpressionAttributeNames": {"#l": "listing"},
               "ExpressionAttributeValues": {":l": {"S": "USER"}}}
    if "cursor" in query:
        request["KeyConditionExpression"] += " AND #id < :before"
        request["ExpressionAttributeNames"]["#id"] = "id"
        request["ExpressionAttributeValues"][":before"] = {"S": base64.urlsafe_b64decode(query["cursor"] + "==").decode()}
    items = dynamodb.query(**request)["Items"]
    page = [user(item) for item in items[:limit]]
    next_cursor = None
    if len(items) > limit:
        next_cursor = base64.urlsafe_b64encode(page[-1]["id"].encode()).decode().rstrip("=")
    return respond(200, {"items": page, "next_cursor": next_cursor})


def update_user(event, context):
    data = json_object(event)
    if data is None:
        return error(400, "invalid_json", "the body is not a JSON object", context)
    user_id = path_id(event)
    if user_id is None:
        return error(400, "invalid_id", "id: not a valid user id", context)
    fields = {key: value.strip() for key, value in data.items() if isinstance(value, str)}
    valid = (fields and len(fields) == len(data) and set(fields) <= {"name", "email"}
             and ("name" not in fields or 1 <= len(fields["name"]) <= 100)
             and ("email" not in fields or EMAIL.match(fields["email"])))
    if not valid:
        return error(422, "validation_failed", "the patch must name a valid name, email or both", context)
    for _ in range(ATTEMPTS):
        item = read_user(user_id)
        if item is None:
            return error(404, "not_found", "no such user", context)
        if not if_match(event, item):
            return error(412, "precondition_failed", "if-match: names no current version of the user", context)
        name, email = fields.get("name", item["name"]["S"]), fields.get("email", item["email"]["S"])
        old_email = item["email"]["S"]
        if name == item["name"]["S"] and email == old_email:
            return respond(200, user(item), etag(item))
        now = rfc3339(int(time.time() * 1000))
        # change_id marks this write as ours, as the Rust store marks its own.
        changed = item | {"name": {"S": name}, "email": {"S": email},
                          "updated_at": {"S": max(now, user(item)["updated_at"])},
                          "version": {"N": str(version(item) + 1)},
                          "change_id": {"S": new_id(int(time.time() * 1000))}}
        condition, values = version_condition(item)
        update = {
            "TableName": USERS_TABLE, "Key": {"pk": item["pk"]},
            "UpdateExpression": "SET #name = :name, email = :email, updated_at = :updated_at, #version = :next, "
                                "change_id = :change",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#name": "name", "#version": "version"},
            "ExpressionAttributeValues": values | {":name": changed["name"], ":email": changed["email"],
                                                   ":updated_at": changed["updated_at"],
                                                   ":next": changed["version"], ":change": changed["change_id"]},
        }
        if email.lower() == old_email.lower():
            try:
                dynamodb.update_item(**update)
            except ClientError as e:
                if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue
                raise
        else:
            try:
                dynamodb.transact_write_items(TransactItems=[
                    {"Update": update},
                    {"Delete": release_email(old_email, user_id)},
                    {"Put": {"TableName": USERS_TABLE,
                             "Item": {"pk": {"S": f"EMAIL#{email.lower()}"}, "user_id": {"S": user_id}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ])
            except ClientError as e:
                failed = cancelled_by(e)
                if 0 in failed:
                    continue
                if 2 in failed:
                    return error(409, "email_taken", "email: already belongs to another user", context)
                raise
        return respond(200, user(changed), etag(changed))
    return error(503, "unavailable", "the user kept changing while it was written", context)


def delete_user(event, context):
    user_id = path_id(event)
    if user_id is None:
        return error(400, "invalid_id", "id: not a valid user id", context)
    for _ in range(ATTEMPTS):
        item = read_user(user_id)
        if item is None:
            return error(404, "not_found", "no such user", context)
        if not if_match(event, item):
            return error(412, "precondition_failed", "if-match: names no current version of the user", context)
        condition, values = version_condition(item)
        writes = [
            {"Delete": {"TableName": USERS_TABLE, "Key": {"pk": item["pk"]}, "ConditionExpression": condition,
                        "ExpressionAttributeNames": {"#version": "version"}, "ExpressionAttributeValues": values}},
            {"Delete": release_email(item["email"]["S"], user_id)},
        ]
        if "idempotency_pk" in item:
            # The record of the create that made the user, unless its key has moved on to another.
            writes.append({"Delete": {"TableName": IDEMPOTENCY_TABLE, "Key": {"pk": item["idempotency_pk"]},
                                      "ConditionExpression": "attribute_not_exists(pk) OR user_id = :user",
                                      "ExpressionAttributeValues": {":user": {"S": user_id}}}})
        try:
            dynamodb.transact_write_items(TransactItems=writes)
        except ClientError as e:
            failed = cancelled_by(e)
            if 0 in failed:
                continue
            if 2 in failed:
                dynamodb.transact_write_items(TransactItems=writes[:2])
            else:
                raise
        return respond(204, None)
    return error(503, "unavailable", "the user kept changing while it was written", context)


def release_email(email, user_id):
    """Deletes the reservation of the email, if it is the user's (or already gone)."""
    return {"TableName": USERS_TABLE, "Key": {"pk": {"S": f"EMAIL#{email.lower()}"}},
            "ConditionExpression": "attribute_not_exists(pk) OR user_id = :user",
            "ExpressionAttributeValues": {":user": {"S": user_id}}}
