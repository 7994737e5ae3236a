"""The benchmark's peer: the same three endpoints written the way a Python team would, with boto3
under awslambdaric, against the same tables and items as the Rust functions."""

import base64
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
EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def respond(status, body, headers=None):
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


def user(item):
    return {key: item[key]["S"] for key in ("id", "name", "email", "created_at")}


def create_user(event, context):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        data = json.loads(body)
    except ValueError:
        return error(400, "invalid_json", "the body is not a JSON object", context)
    if not isinstance(data, dict):
        return error(400, "invalid_json", "the body is not a JSON object", context)
    name = str(data.get("name", "")).strip()
    email = str(data.get("email", "")).strip()
    if not 1 <= len(name) <= 100 or not EMAIL.match(email):
        return error(422, "validation_failed", "name or email is invalid", context)
    millis = int(time.time() * 1000)
    user_id = new_id(millis)
    created_at = datetime.fromtimestamp(millis / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    item = {"pk": f"USER#{user_id}", "id": user_id, "name": name, "email": email,
            "created_at": created_at, "listing": "USER"}
    try:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": USERS_TABLE, "Item": {k: {"S": v} for k, v in item.items()},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": USERS_TABLE,
                     "Item": {"pk": {"S": f"EMAIL#{email.lower()}"}, "user_id": {"S": user_id}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    except ClientError as e:
        if e.response["Error"]["Code"] == "TransactionCanceledException":
            return error(409, "email_taken", "email: already belongs to another user", context)
        raise
    body = {key: item[key] for key in ("id", "name", "email", "created_at")}
    return respond(201, body, {"location": f"/users/{user_id}"})


def get_user(event, context):
    user_id = (event.get("pathParameters") or {}).get("id", "")
    if len(user_id) != 26 or any(c not in CROCKFORD for c in user_id):
        return error(400, "invalid_id", "id: not a valid user id", context)
    found = dynamodb.get_item(TableName=USERS_TABLE, Key={"pk": {"S": f"USER#{user_id}"}}, ConsistentRead=True)
    if "Item" not in found:
        return error(404, "not_found", "no such user", context)
    return respond(200, user(found["Item"]))


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
