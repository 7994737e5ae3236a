#!/usr/bin/env bash
# End-to-end check of a deployed stack: gets access tokens for the stack's two app clients with
# the client-credentials grant, then creates, reads, lists, updates and deletes a user through
# the API, and checks that a call without a token is refused (401) and a read-only token cannot
# write (403). The user it creates is deleted by the test itself.
#
# usage: tests/deployed-smoke.sh [stack-name] [region]
#        (defaults: users-service, us-east-1 as in samconfig.toml; needs aws, curl, python3)
set -euo pipefail

stack=${1:-users-service}
export AWS_REGION=${2:-us-east-1}
output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
api=$(output ApiUrl)
pool=$(output UserPoolId)
token_url=$(output TokenUrl)

access_token() { # access_token CLIENT-ID: an access token carrying every scope the client may ask for
  local secret
  secret=$(aws cognito-idp describe-user-pool-client --user-pool-id "$pool" --client-id "$1" \
    --query UserPoolClient.ClientSecret --output text)
  curl -sS --fail-with-body -u "$1:$secret" -d grant_type=client_credentials "$token_url" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
token=$(access_token "$(output FullAccessClientId)")
read_token=$(access_token "$(output ReadOnlyClientId)")

work=$(mktemp -d)
# Whatever fails, the user this run created goes (a delete of one already gone is a harmless 404).
trap 'if [ -n "${id:-}" ]; then curl -sS -o /dev/null -X DELETE "$api/users/$id" -H "authorization: Bearer $token"; fi; rm -rf "$work"' EXIT
expect() { # expect STATUS DESCRIPTION curl-args...
  local want=$1 what=$2
  shift 2
  local got
  got=$(curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' "$@")
  if [ "$got" != "$want" ]; then
    echo "FAIL $what: $got instead of $want: $(cat "$work/body")"
    exit 1
  fi
  echo "ok   $what: $got"
}
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/body" "$1"; }
etag() { grep -i '^etag:' "$work/headers" | cut -d' ' -f2- | tr -d '\r'; }

run=$(date +%s)-$RANDOM
create=(-H "authorization: Bearer $token" -H 'content-type: application/json'
  -H "idempotency-key: smoke-$run" -d "{\"name\": \"Smoke Test\", \"email\": \"user-$run@example.com\"}")

expect 401 "a call without a token" "$api/users"
expect 201 "create" "$api/users" "${create[@]}"
id=$(field id)
created=$(etag)
expect 201 "an idempotent retry" "$api/users" "${create[@]}"
expect 200 "get" "$api/users/$id" -H "authorization: Bearer $token"
expect 404 "get an unknown id" "$api/users/01JD3F5Q8K2X7V9M4T6B1N0C8S" -H "authorization: Bearer $token"
expect 200 "list" "$api/users?limit=1" -H "authorization: Bearer $token"
expect 400 "list with a forged cursor" "$api/users?cursor=forged" -H "authorization: Bearer $token"

expect 200 "get with a read-only token" "$api/users/$id" -H "authorization: Bearer $read_token"
expect 403 "create with a read-only token" "$api/users" -H "authorization: Bearer $read_token" \
  -H 'content-type: application/json' -d '{"name": "Not Allowed", "email": "nobody@example.com"}'
if grep -q '"error"' "$work/body"; then
  echo "FAIL the 403 came from a function, not from API Gateway: $(cat "$work/body")"
  exit 1
fi

expect 200 "update with if-match" "$api/users/$id" -X PATCH -H "authorization: Bearer $token" \
  -H 'content-type: application/merge-patch+json' -H "if-match: $created" -d '{"name": "Smoke Tested"}'
[ "$(field name)" = "Smoke Tested" ] || { echo "FAIL the update answered $(cat "$work/body")"; exit 1; }
expect 412 "update with a stale if-match" "$api/users/$id" -X PATCH -H "authorization: Bearer $token" \
  -H 'content-type: application/merge-patch+json' -H "if-match: $created" -d '{"name": "Too Late"}'
expect 204 "delete" "$api/users/$id" -X DELETE -H "authorization: Bearer $token"
expect 404 "get after the delete" "$api/users/$id" -H "authorization: Bearer $token"
expect 404 "a second delete" "$api/users/$id" -X DELETE -H "authorization: Bearer $token"
echo "deployed stack $stack answers as the contract says"
