#!/usr/bin/env bash
# End-to-end check of a deployed stack: signs a throwaway Cognito user in, creates, reads and
# lists a user through the API, checks that a call without a token is refused, then deletes the
# Cognito user. The created API user stays in the table (the API has no delete).
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
client=$(output UserPoolClientId)

run=$(date +%s)-$RANDOM
caller="smoke-$run@example.com"
password="Smoke-$run-$RANDOM-Aa1!"
aws cognito-idp admin-create-user --user-pool-id "$pool" --username "$caller" \
  --message-action SUPPRESS >/dev/null
trap 'aws cognito-idp admin-delete-user --user-pool-id "$pool" --username "$caller"' EXIT
aws cognito-idp admin-set-user-password --user-pool-id "$pool" --username "$caller" \
  --password "$password" --permanent
token=$(aws cognito-idp initiate-auth --client-id "$client" --auth-flow USER_PASSWORD_AUTH \
  --auth-parameters "USERNAME=$caller,PASSWORD=$password" \
  --query AuthenticationResult.AccessToken --output text)

expect() { # expect STATUS DESCRIPTION curl-args...
  local want=$1 what=$2
  shift 2
  local got
  got=$(curl -sS -o /tmp/smoke-body -w '%{http_code}' "$@")
  if [ "$got" != "$want" ]; then
    echo "FAIL $what: $got instead of $want: $(cat /tmp/smoke-body)"
    exit 1
  fi
  echo "ok   $what: $got"
}

expect 401 "a call without a token" "$api/users"
expect 201 "create" "$api/users" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -H "idempotency-key: smoke-$run" \
  -d "{\"name\": \"Smoke Test\", \"email\": \"user-$run@example.com\"}"
id=$(python3 -c 'import json; print(json.load(open("/tmp/smoke-body"))["id"])')
expect 201 "an idempotent retry" "$api/users" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -H "idempotency-key: smoke-$run" \
  -d "{\"name\": \"Smoke Test\", \"email\": \"user-$run@example.com\"}"
expect 200 "get" "$api/users/$id" -H "authorization: Bearer $token"
expect 404 "get an unknown id" "$api/users/01JD3F5Q8K2X7V9M4T6B1N0C8S" -H "authorization: Bearer $token"
expect 200 "list" "$api/users?limit=1" -H "authorization: Bearer $token"
expect 400 "list with a forged cursor" "$api/users?cursor=forged" -H "authorization: Bearer $token"
echo "deployed stack $stack answers as the contract says"
