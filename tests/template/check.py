"""Offline checks of template.yaml, run by `cargo xtask test` with the SAM tools installed.

Transforms the SAM template to plain CloudFormation with samtranslator (written to the path given
as the only argument, for cfn-lint), then checks that each function's role allows exactly the
DynamoDB actions its code calls on exactly the tables and index it touches, that no inline policy
grants `*`, that the API's routes are the contract's and the local router's, each requiring its
scope, that the scopes and the app clients that hold them are the Cognito pool's and every
documented client is one the authorizer accepts, and that the alarms, rollbacks, metrics settings
and dashboard an operator relies on are in place, for each samconfig.toml environment as
CloudFormation would resolve it (tests/template/cfn.py); and that every change a deployment makes
to a function publishes a new version (tests/template/versions.py); and that the domain events'
stream, bus, event source mapping and encrypted dead-letter queue are set as API.md's "Events"
needs them. What the functions' logs and
metrics make of these alarms is the offline model's (tests/tests/api/offline_model.rs).
"""

import json
import os
import pathlib
import re
import sys
import tomllib

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from cfn import Stack, environments, sync_stacks, transformed
from versions import check_versions

ROOT = pathlib.Path(__file__).resolve().parents[2]

# What each function's code calls (shared/src/dynamodb/), on what. A TransactWriteItems needs no
# action of its own: IAM authorises each of its items as the put, update or delete it is.
EXPECTED_PERMISSIONS = {
    "create-user": {
        ("dynamodb:PutItem", "UsersTable.Arn"),
        ("dynamodb:GetItem", "UsersTable.Arn"),
        ("dynamodb:PutItem", "IdempotencyTable.Arn"),
        ("dynamodb:GetItem", "IdempotencyTable.Arn"),
        ("dynamodb:UpdateItem", "IdempotencyTable.Arn"),
        ("dynamodb:DeleteItem", "IdempotencyTable.Arn"),
    },
    "get-user": {("dynamodb:GetItem", "UsersTable.Arn")},
    "list-users": {("dynamodb:Query", "${UsersTable.Arn}/index/ByNewest")},
    "update-user": {
        ("dynamodb:GetItem", "UsersTable.Arn"),
        ("dynamodb:UpdateItem", "UsersTable.Arn"),
        ("dynamodb:PutItem", "UsersTable.Arn"),
        ("dynamodb:DeleteItem", "UsersTable.Arn"),
    },
    "delete-user": {
        ("dynamodb:GetItem", "UsersTable.Arn"),
        ("dynamodb:DeleteItem", "UsersTable.Arn"),
        ("dynamodb:DeleteItem", "IdempotencyTable.Arn"),
    },
    # Its event source mapping reads this one stream with the function's role and sends its
    # on-failure records to the queue with it; the function publishes to this one bus and
    # dead-letters to the same queue.
    "publish-events": {
        ("dynamodb:DescribeStream", "UsersTable.StreamArn"),
        ("dynamodb:GetRecords", "UsersTable.StreamArn"),
        ("dynamodb:GetShardIterator", "UsersTable.StreamArn"),
        ("dynamodb:ListStreams", "UsersTable.StreamArn"),
        ("events:PutEvents", "UsersEventBus.Arn"),
        ("sqs:SendMessage", "EventsDeadLetterQueue.Arn"),
    },
}
# The functions the users table's stream drives, not the API.
STREAM_FUNCTIONS = {"PublishEventsFunction"}
EXPECTED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
# The role SAM makes for CodeDeploy's canary deployments.
CODEDEPLOY = {"arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"}
# Resources that would grant access or open a route around the ones checked.
FORBIDDEN = {
    "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group",
    "AWS::Lambda::Url", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGateway::RestApi",
}
# The resource server's identifier and scopes, and the app clients (client-credentials grant)
# with the scopes each may ask for.
RESOURCE_SERVER = ("users", {"read", "write"})
CLIENTS = {
    "FullAccessClient": {"users/read", "users/write"},
    "ReadOnlyClient": {"users/read"},
}
COGNITO_JWT = {
    "issuer": {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"},
    "audience": [{"Ref": client} for client in CLIENTS],
}
# The contract's routes (API.md), as (method, path, function), and the scope each requires.
CONTRACT_SCOPES = {
    ("POST", "/users", "create-user"): "users/write",
    ("GET", "/users/{id}", "get-user"): "users/read",
    ("GET", "/users", "list-users"): "users/read",
    ("PATCH", "/users/{id}", "update-user"): "users/write",
    ("DELETE", "/users/{id}", "delete-user"): "users/write",
}
CONTRACT_ROUTES = set(CONTRACT_SCOPES)
# What a browser may send and read (API.md's request and response headers).
CORS = {
    "AllowMethods": {method for method, _, _ in CONTRACT_ROUTES},
    "AllowHeaders": {"authorization", "content-type", "idempotency-key", "if-match"},
    "ExposeHeaders": {"etag", "location", "retry-after", "x-request-id"},
}
# Where the stack's outputs are used to call the deployed API: `$(output Name)`.
DOCUMENTED = ["README.md", "tests/deployed-smoke.sh"]


class NoManagedPolicies:
    """Offline: the template names no managed policy that would need IAM to resolve."""

    def load(self):
        return {}


def text(value):
    """An intrinsic as the text a reader would write: `X.Arn`, a Sub string, a Ref."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Fn::GetAtt":
            return ".".join(argument) if isinstance(argument, list) else argument
        if function == "Fn::Sub" and isinstance(argument, str):
            return argument
        if function == "Ref":
            return argument
    return json.dumps(value, sort_keys=True)


def as_list(value):
    return value if isinstance(value, list) else [value]


def main(output_path):
    sam = yaml_parse((ROOT / "template.yaml").read_text())
    # As `sam validate` does: the translator wants packaged code, which `sam build` makes later.
    packaged = json.loads(json.dumps(sam))
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/bootstrap.zip"
    cfn = transform(packaged, {}, NoManagedPolicies())
    pathlib.Path(output_path).write_text(json.dumps(cfn, indent=2))
    resources = cfn["Resources"]
    failures = []
    passed = 0

    def check(ok, message):
        nonlocal passed
        if ok:
            passed += 1
        else:
            failures.append(message)

    binaries = {
        name: resource["Metadata"]["BuildProperties"]["Binary"]
        for name, resource in sam["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    check(set(binaries.values()) == set(EXPECTED_PERMISSIONS), f"functions {sorted(binaries.values())}")

    for name, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                for field in ("Action", "NotAction", "Resource", "NotResource"):
                    for value in as_list(statement.get(field, [])):
                        check("*" not in text(value), f"{name} grants {field} {text(value)}")

    for function, binary in binaries.items():
        role_ref = resources[function]["Properties"]["Role"]
        role = resources[role_ref["Fn::GetAtt"][0]]["Properties"]
        granted = set()
        for policy in role.get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                check(statement.get("Effect") == "Allow", f"{binary}: a statement that is not Allow")
                for action in as_list(statement["Action"]):
                    for target in as_list(statement["Resource"]):
                        granted.add((action, text(target)))
        expected = EXPECTED_PERMISSIONS[binary]
        check(granted == expected, f"{binary}: extra {sorted(granted - expected)}, missing {sorted(expected - granted)}")
        managed = {text(arn) for arn in role.get("ManagedPolicyArns", [])}
        check(managed == EXPECTED_MANAGED_POLICIES, f"{binary}: managed policies {sorted(managed)}")

    template_routes = set()
    for function, binary in binaries.items():
        for event in sam["Resources"][function]["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                template_routes.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"], binary))
    check(template_routes == CONTRACT_ROUTES, f"template routes {sorted(template_routes)}")

    router = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["metadata"]["lambda"]["watch"]["router"]
    local_routes = set()
    for path, target in router.items():
        if isinstance(target, str):
            local_routes.add(("GET", path, target))
        else:
            local_routes.update((entry["method"].upper(), path, entry["function"]) for entry in target)
    check(local_routes == template_routes, f"local router {sorted(local_routes)} differs from the template")

    # What API Gateway will serve: the transformed API's OpenAPI body.
    for name, resource in resources.items():
        if resource["Type"] != "AWS::ApiGatewayV2::Api":
            continue
        body = resource["Properties"]["Body"]
        schemes = body.get("components", {}).get("securitySchemes", {})
        jwt = {n for n, scheme in schemes.items() if scheme.get("x-amazon-apigateway-authorizer", {}).get("type") == "jwt"}
        served = set()
        for path, operations in body["paths"].items():
            for method, operation in operations.items():
                uri = text(operation["x-amazon-apigateway-integration"]["uri"])
                targets = [b for f, b in binaries.items() if "${" + f + "Aliaslive}" in uri]
                route = (method.upper(), path, targets[0] if len(targets) == 1 else uri)
                served.add(route)
                security = operation.get("security", [])
                secured = {n for requirement in security for n in requirement}
                check(bool(secured) and secured <= jwt, f"{method.upper()} {path} is not behind the JWT authorizer")
                scopes = [scope for requirement in security for scopes in requirement.values() for scope in scopes]
                expected = CONTRACT_SCOPES.get(route)
                check(scopes == [expected], f"{method.upper()} {path} requires scopes {scopes}, not {expected}")
        check(served == CONTRACT_ROUTES, f"{name} serves {sorted(served)}")

    cors = sam["Resources"]["UsersApi"]["Properties"]["CorsConfiguration"]
    for field, expected in CORS.items():
        allowed = set(cors.get(field, []))
        check(allowed == expected, f"CORS {field} is {sorted(allowed)}, not {sorted(expected)}")

    # Nothing that could widen access beside the roles and routes checked above.
    roles = {resources[f]["Properties"]["Role"]["Fn::GetAtt"][0] for f in binaries}
    for name, resource in resources.items():
        check(resource["Type"] not in FORBIDDEN, f"{name} is a {resource['Type']}, which bypasses the checks")
        if resource["Type"] == "AWS::IAM::Role" and name not in roles:
            managed = {text(arn) for arn in resource["Properties"].get("ManagedPolicyArns", [])}
            check(managed == CODEDEPLOY and not resource["Properties"].get("Policies"), f"unexpected role {name}")

    authorizers = [
        scheme["x-amazon-apigateway-authorizer"]
        for resource in resources.values() if resource["Type"] == "AWS::ApiGatewayV2::Api"
        for scheme in resource["Properties"]["Body"].get("components", {}).get("securitySchemes", {}).values()
    ]
    check(
        [a.get("jwtConfiguration") for a in authorizers] == [COGNITO_JWT],
        f"the authorizer is not the stack's Cognito pool and clients: {authorizers}",
    )

    # Scopes: the resource server defines each scope a route requires, and no other; every app
    # client gets its tokens by client credentials (the only grant whose access tokens carry
    # these scopes without a paid pre-token-generation trigger) from the pool's domain; and every
    # client that README.md or the smoke test calls with is one the authorizer accepts, since
    # another client's token gets 401 whatever its scopes.
    pool = {"Ref": "UserPool"}
    servers = [r for r in resources.values() if r["Type"] == "AWS::Cognito::UserPoolResourceServer"]
    identifier, scope_names = RESOURCE_SERVER
    defined = {f"{identifier}/{scope['ScopeName']}" for r in servers for scope in r["Properties"].get("Scopes", [])}
    check(
        [(r["Properties"]["UserPoolId"], r["Properties"]["Identifier"]) for r in servers] == [(pool, identifier)],
        f"resource servers {[r['Properties'] for r in servers]}",
    )
    check(defined == {f"{identifier}/{scope}" for scope in scope_names}, f"the resource server defines {sorted(defined)}")
    check(defined == set(CONTRACT_SCOPES.values()), f"the routes require {sorted(set(CONTRACT_SCOPES.values()))}, the pool defines {sorted(defined)}")
    domains = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Cognito::UserPoolDomain"]
    check([d["UserPoolId"] for d in domains] == [pool], f"the pool has no single domain: {domains}")
    clients = {n: r for n, r in resources.items() if r["Type"] == "AWS::Cognito::UserPoolClient"}
    check(set(clients) == set(CLIENTS), f"app clients {sorted(clients)}")
    for name, resource in clients.items():
        client = resource["Properties"]
        check(client.get("UserPoolId") == pool, f"{name} is not the pool's")
        check(
            client.get("GenerateSecret") is True
            and client.get("AllowedOAuthFlowsUserPoolClient") is True
            and client.get("AllowedOAuthFlows") == ["client_credentials"],
            f"{name} does not get tokens by client credentials",
        )
        check(client.get("ExplicitAuthFlows") == ["ALLOW_REFRESH_TOKEN_AUTH"], f"{name} lets users sign in: {client.get('ExplicitAuthFlows')}")
        scopes = set(client.get("AllowedOAuthScopes", []))
        check(scopes == CLIENTS.get(name) and scopes <= defined, f"{name} may ask for {sorted(scopes)}")
        # The scopes are named as text, so the client must wait for the server that defines them.
        check("UsersResourceServer" in as_list(resource.get("DependsOn", [])), f"{name} does not wait for the resource server")
    outputs = cfn.get("Outputs", {})
    client_outputs = {n: o["Value"]["Ref"] for n, o in outputs.items() if isinstance(o["Value"], dict) and o["Value"].get("Ref") in clients}
    check(set(client_outputs.values()) == set(CLIENTS), f"outputs name the clients {sorted(client_outputs.values())}")
    check(
        "${UserPoolDomain}" in text(outputs.get("TokenUrl", {}).get("Value")),
        "no TokenUrl output on the pool's domain",
    )
    accepted = {
        audience.get("Ref")
        for authorizer in authorizers
        for audience in authorizer.get("jwtConfiguration", {}).get("audience", [])
    }
    for document in DOCUMENTED:
        used = set(re.findall(r"\$\(output (\w+)\)", (ROOT / document).read_text()))
        check(bool(used & set(client_outputs)), f"{document} calls the API with no client")
        for output in sorted(used):
            check(output in outputs, f"{document} reads output {output}, which the stack lacks")
            if output in client_outputs:
                check(client_outputs[output] in accepted, f"{document} calls with {output}, which the authorizer refuses")

    stage = next((r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"), {})
    throttled = stage.get("DefaultRouteSettings", {})
    check({"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(throttled), "the stage is not throttled")
    check("DestinationArn" in stage.get("AccessLogSettings", {}), "the stage writes no access logs")

    for name in ("UsersTable", "IdempotencyTable"):
        table = resources[name]
        properties = table["Properties"]
        check(table.get("DeletionPolicy") == "Retain" and table.get("UpdateReplacePolicy") == "Retain", f"{name} is not retained")
        check(properties.get("DeletionProtectionEnabled") == {"Ref": "DeletionProtection"}, f"{name} lacks deletion protection")
        check(properties.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, f"{name} lacks PITR")
        check(properties.get("SSESpecification", {}).get("SSEEnabled") is True, f"{name} is not encrypted with a KMS key")
        check(properties.get("BillingMode") == "PAY_PER_REQUEST", f"{name} is not on-demand")
    ttl = resources["IdempotencyTable"]["Properties"].get("TimeToLiveSpecification", {})
    check(ttl == {"AttributeName": "expires_at", "Enabled": True}, f"idempotency TTL is {ttl}")

    # Each function logs to a group of its own, kept for a while, whose name does not derive from
    # the function's: `sam delete` removes the function first, and nothing recreates the group.
    for function, binary in binaries.items():
        group_ref = resources[function]["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        group = resources.get(group_ref, {})
        check(group.get("Type") == "AWS::Logs::LogGroup", f"{binary} logs to no log group of the stack")
        check("RetentionInDays" in group.get("Properties", {}), f"{binary}'s log group has no retention")
        check(function not in json.dumps(group.get("Properties", {}).get("LogGroupName")), f"{binary}'s log group is named after it")

    # The canary judges the new version alone: each rollback alarm reads the version the alias is
    # about to point to (ExecutedVersion), never the function as a whole.
    for function, binary in binaries.items():
        alias = next(r for r in resources.values() if r["Type"] == "AWS::Lambda::Alias" and r["Properties"]["FunctionName"] == {"Ref": function})
        new_version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        version_dimension = {"Fn::GetAtt": [new_version, "Version"]}
        for alarm in sam["Resources"][function]["Properties"]["DeploymentPreference"]["Alarms"]:
            properties = resources[alarm["Ref"]]["Properties"]
            stats = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
            stats = stats or [properties]
            for metric in stats:
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                check(
                    version_dimension in (dimensions.get("ExecutedVersion"), dimensions.get("version")),
                    f"{alarm['Ref']} reads {metric.get('MetricName')} of more than {binary}'s new version: {dimensions}",
                )

    # Operations: every alarm notifies the optional topic; each function's deployment rolls back
    # on its errors, its 5xx answers and its p99 duration; throttling is watched at every layer;
    # the 5xx filters read the top-level `status` of the summary line (tests/tests/api/telemetry.rs).
    notify = {"Fn::If": ["NotifyAlarms", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarm_names = {n for n, r in sam["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    for name in alarm_names:
        properties = sam["Resources"][name]["Properties"]
        check(properties.get("AlarmActions") == notify and properties.get("OKActions") == notify, f"{name} notifies no topic")
    expected_alarms = {"ApiServerErrorRateAlarm", "UsersTableThrottlesAlarm", "IdempotencyTableThrottlesAlarm"}
    expected_alarms |= {"PublishEventsErrorsAlarm", "PublishEventsThrottlesAlarm", "PublishEventsIteratorAgeAlarm", "EventsDeadLettersAlarm"}
    http_functions = [f for f in binaries if f not in STREAM_FUNCTIONS]
    for function in http_functions:
        prefix = function.removesuffix("Function")
        expected_alarms |= {f"{prefix}{kind}Alarm" for kind in ("Errors", "ServerErrors", "Duration", "Throttles")}
        rollback = sam["Resources"][function]["Properties"]["DeploymentPreference"]["Alarms"]
        rollback = {alarm["Ref"] for alarm in rollback}
        check(rollback == {f"{prefix}{kind}Alarm" for kind in ("Errors", "ServerErrors", "Duration")}, f"{function} rolls back on {sorted(rollback)}")
    check(alarm_names == expected_alarms, f"alarms: extra {sorted(alarm_names - expected_alarms)}, missing {sorted(expected_alarms - alarm_names)}")
    filters = {r["Properties"]["LogGroupName"]["Ref"]: r["Properties"] for r in sam["Resources"].values() if r["Type"] == "AWS::Logs::MetricFilter"}
    for function in http_functions:
        binary = binaries[function]
        group = resources[function]["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        metric_filter = filters.get(group, {})
        check(metric_filter.get("FilterPattern") == "{ $.status >= 500 }", f"{binary}'s 5xx filter: {metric_filter}")
        for transformation in metric_filter.get("MetricTransformations", []):
            check(transformation.get("MetricNamespace") == {"Ref": "AWS::StackName"}, f"{binary}'s 5xx are counted outside the stack's namespace")
            dimensions = {d["Key"]: d["Value"] for d in transformation.get("Dimensions", [])}
            check(dimensions == {"function": "$.function", "version": "$.version"}, f"{binary}'s 5xx are not counted by function and version: {dimensions}")
    globals_ = sam["Globals"]["Function"]
    check(globals_.get("Tracing") == "Active", "X-Ray tracing is not active")
    # Lambda's REPORT lines (billed duration, memory, init) are system logs at INFO.
    logging = globals_.get("LoggingConfig", {})
    check(logging.get("LogFormat") == "JSON", "the functions do not log JSON")
    check(logging.get("SystemLogLevel") in ("INFO", "DEBUG"), f"SystemLogLevel {logging.get('SystemLogLevel')} drops the REPORT lines")
    # The 5xx summary lines are at ERROR: no allowed level may hide them.
    allowed = sam["Parameters"]["LogLevel"]["AllowedValues"]
    check(set(allowed) <= {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}, f"LogLevel allows {allowed}, which hides ERROR lines")
    variables = globals_["Environment"]["Variables"]
    check(variables.get("POWERTOOLS_METRICS_NAMESPACE") == {"Ref": "AWS::StackName"}, "the metrics namespace is not the stack's own")
    check("MetricsNamespace" not in sam["Parameters"], "a parameter can put two stacks' metrics in one namespace")
    check(variables.get("POWERTOOLS_SERVICE_NAME") == {"Ref": "ServiceName"}, "the service dimension is not the parameter")
    dashboards = [r["Properties"]["DashboardBody"]["Fn::Sub"] for r in sam["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    check(len(dashboards) == 1, "no operations dashboard")
    for body in dashboards:
        widgets = json.loads(body)["widgets"]
        shown = {a.removeprefix("${").removesuffix(".Arn}") for w in widgets if w["type"] == "alarm" for a in w["properties"]["alarms"]}
        check(shown == alarm_names, f"the dashboard shows alarms {sorted(shown)}")
        lambda_rows = {
            (row[1], row[3])
            for w in widgets if w["type"] == "metric"
            for row in w["properties"]["metrics"]
            if row[:1] == ["AWS/Lambda"] and row[2] == "FunctionName"
        }
        for function in binaries:
            for metric in ("Duration", "Errors", "Throttles", "ConcurrentExecutions"):
                check((metric, f"${{{function}}}") in lambda_rows, f"the dashboard lacks {function}'s {metric}")

    # ByNewest takes every create on one partition: its write throttles are watched.
    index_writes = [
        m["MetricStat"]["Metric"] for m in sam["Resources"]["UsersTableThrottlesAlarm"]["Properties"]["Metrics"]
        if "MetricStat" in m and m["MetricStat"]["Metric"]["MetricName"] == "WriteThrottleEvents"
        and {"Name": "GlobalSecondaryIndexName", "Value": "ByNewest"} in m["MetricStat"]["Metric"]["Dimensions"]
    ]
    check(len(index_writes) == 1, "no alarm reads ByNewest's WriteThrottleEvents")

    # The pool outlives a replacement or a deletion of the stack, protected like the tables.
    pool = sam["Resources"]["UserPool"]
    check(pool.get("DeletionPolicy") == "Retain" and pool.get("UpdateReplacePolicy") == "Retain", "the user pool is not retained")
    check(pool["Properties"].get("DeletionProtection") == {"Fn::If": ["ProtectData", "ACTIVE", "INACTIVE"]}, "the user pool lacks deletion protection")

    check_events(sam, resources, dashboards, check)
    check_environments(check)
    check_versions(check)

    for failure in failures:
        print(f"template check failed: {failure}")
    print(f"template: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


def check_environments(check):
    """Each samconfig.toml environment as CloudFormation would resolve it."""
    deployed = {stack for stack, _ in environments().values()}
    for environment, stack in sync_stacks().items():
        check(stack not in deployed, f"`sam sync --config-env {environment}` updates {stack}, a stack `sam deploy` manages")
    sam = yaml_parse((ROOT / "template.yaml").read_text())
    for environment, (stack_name, parameters) in environments().items():
        stack = Stack(transformed(sam, parameters), stack_name, parameters)
        functions = stack.of_type("AWS::Lambda::Function")
        # A burst the stage lets through must be one Lambda can run: beyond a function's reserved
        # concurrency Lambda throttles, and API Gateway answers 500, not the stage's 429.
        stage = next(iter(stack.of_type("AWS::ApiGatewayV2::Stage")))
        burst = int(stack.properties(stage)["DefaultRouteSettings"]["ThrottlingBurstLimit"])
        for name in functions:
            reserved = stack.properties(name).get("ReservedConcurrentExecutions")
            check(reserved is None or burst <= int(reserved), f"{environment}: a burst of {burst} exceeds {name}'s reserved concurrency {reserved}")
        # Each stack's metrics in its own namespace.
        for name in functions:
            namespace = stack.properties(name)["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
            check(namespace == stack_name, f"{environment}: {name} writes metrics to {namespace}")
        # The cursor key by version: a rotation changes the reference's text, so CloudFormation
        # resolves it again, and the previous key is still accepted.
        for pinned, previous in (("", ""), ("v2", "v1")):
            keys = {**parameters, "CursorKeyVersion": pinned, "CursorPreviousKeyVersion": previous}
            rotated = Stack(transformed(sam, keys), stack_name, keys)
            variables = rotated.properties("ListUsersFunction")["Environment"]["Variables"]
            secret = f"{stack_name}-CursorSecret"
            expected = {"CURSOR_SECRET": f"{{{{resolve:secretsmanager:{secret}}}}}"} if not pinned else {
                "CURSOR_SECRET": f"{{{{resolve:secretsmanager:{secret}:SecretString:::{pinned}}}}}",
                "CURSOR_PREVIOUS_SECRET": f"{{{{resolve:secretsmanager:{secret}:SecretString:::{previous}}}}}",
            }
            found = {k: v for k, v in variables.items() if k.startswith("CURSOR_")}
            check(found == expected, f"{environment}: list-users' cursor keys {found}")
def check_events(sam, resources, dashboards, check):
    """Domain events: the stream, the bus, the mapping's settings, the dead-letter queue and the
    alarms and widgets that watch them (API.md, "Events")."""
    function = "PublishEventsFunction"
    stream = {"Fn::GetAtt": ["UsersTable", "StreamArn"]}
    queue = {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    table = resources["UsersTable"]["Properties"]
    check(table.get("StreamSpecification") == {"StreamViewType": "NEW_AND_OLD_IMAGES"}, f"the users table's stream is {table.get('StreamSpecification')}")
    check("StreamSpecification" not in resources["IdempotencyTable"]["Properties"], "the idempotency table has a stream")
    buses = [n for n, r in resources.items() if r["Type"] == "AWS::Events::EventBus"]
    check(buses == ["UsersEventBus"], f"event buses {buses}")
    variables = resources[function]["Properties"].get("Environment", {}).get("Variables", {})
    check(variables.get("EVENT_BUS_NAME") == {"Ref": "UsersEventBus"}, "publish-events does not publish to the stack's bus")
    check(variables.get("DEAD_LETTER_QUEUE_URL") == {"Ref": "EventsDeadLetterQueue"}, "publish-events dead-letters elsewhere")

    mappings = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    check(len(mappings) == 1, f"event source mappings: {len(mappings)}")
    for mapping in mappings:
        check(mapping.get("EventSourceArn") == stream, f"the mapping reads {mapping.get('EventSourceArn')}")
        check(mapping.get("FunctionName") == {"Ref": f"{function}Aliaslive"}, f"the mapping invokes {mapping.get('FunctionName')}, not the live alias")
        check(mapping.get("StartingPosition") == "TRIM_HORIZON", "the mapping does not start from the stream's oldest record")
        check(mapping.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "the mapping ignores batch item failures")
        check(mapping.get("BisectBatchOnFunctionError") is True, "the mapping does not bisect a failing batch")
        # Retries are bounded by the record's age alone: a count could give up on a young record,
        # and then the mapping keeps only its sequence numbers, not the change.
        check(mapping.get("MaximumRetryAttempts") == -1, f"the mapping gives up after {mapping.get('MaximumRetryAttempts')} retries, not at a record's age")
        age = mapping.get("MaximumRecordAgeInSeconds", -1)
        check(60 <= age <= 6 * 3600, f"a record is given up after {age} s: not bounded, or too late to replay it from the stream's 24 hours")
        # publish-events dead-letters a change it still cannot publish at this age (GIVE_UP_AGE in
        # shared/src/events/publisher.rs); the mapping must still be retrying then, with time for a
        # last invocation (its timeout, 60 s) to finish.
        give_up_age = 50 * 60
        check(age >= give_up_age + 2 * 60, f"the mapping gives up on a record at {age} s, before publish-events keeps its change at {give_up_age} s")
        check(mapping.get("ParallelizationFactor", 1) == 1 and mapping.get("BatchSize", 100) <= 1000, "the mapping's batches or parallelism")
        destination = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        check(destination == queue, f"the mapping's on-failure destination is {destination}")
    # The SAM event source would attach AWSLambdaDynamoDBExecutionRole, which reads every stream.
    events = sam["Resources"][function]["Properties"].get("Events", {})
    check(not events, f"publish-events has SAM events {sorted(events)}")

    dlq = resources.get("EventsDeadLetterQueue", {})
    properties = dlq.get("Properties", {})
    check(dlq.get("Type") == "AWS::SQS::Queue", "no dead-letter queue")
    check(properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties, "the dead-letter queue is not encrypted")
    check(properties.get("MessageRetentionPeriod") == 1209600, "the dead-letter queue keeps messages less than 14 days")

    alarms = {n: r["Properties"] for n, r in sam["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    depth = alarms.get("EventsDeadLettersAlarm", {})
    check(
        depth.get("Namespace") == "AWS/SQS"
        and depth.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and depth.get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["EventsDeadLetterQueue", "QueueName"]}}]
        and depth.get("Threshold") == 0 and depth.get("ComparisonOperator") == "GreaterThanThreshold",
        f"no alarm fires when the dead-letter queue holds anything: {depth}",
    )
    lag = alarms.get("PublishEventsIteratorAgeAlarm", {})
    check(
        lag.get("Namespace") == "AWS/Lambda" and lag.get("MetricName") == "IteratorAge"
        and lag.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        and lag.get("Statistic") == "Maximum" and 0 < lag.get("Threshold", 0) < 3600 * 1000,
        f"no alarm on the stream's iterator age: {lag}",
    )
    rollback = {a["Ref"] for a in sam["Resources"][function]["Properties"]["DeploymentPreference"]["Alarms"]}
    check(rollback == {"PublishEventsErrorsAlarm"}, f"publish-events rolls back on {sorted(rollback)}")
    for body in dashboards:
        rows = [row for w in json.loads(body)["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]]
        check(["AWS/Lambda", "IteratorAge", "FunctionName", f"${{{function}}}"] in [r[:4] for r in rows], "the dashboard lacks the iterator age")
        check(any(r[:4] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${EventsDeadLetterQueue.QueueName}"] for r in rows), "the dashboard lacks the dead letters")
        named = {r[1] for r in rows if len(r) > 1 and isinstance(r[1], str)}
        check({"EventsPublished", "EventsDeadLettered", "EventBatchesRetried"} <= named, "the dashboard lacks the events' own metrics")


if __name__ == "__main__":
    # The translator reads the region from here (not AWS_REGION) for ARNs and partitions.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sys.exit(main(sys.argv[1]))
