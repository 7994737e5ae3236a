"""What each samconfig.toml environment would deploy, resolved as CloudFormation would resolve it,
for the offline model of Lambda and CloudWatch (tests/tests/api/offline_model.rs): each
function's environment as Lambda would set it, its log group and reserved concurrency, the metric
filters on each log group, and every alarm. Prints one JSON document.
"""

import json

from cfn import NEW_VERSION, environments, sam_template, stack_for


def function_environment(stack, name, properties):
    """The variables Lambda sets for the function, beside its own: its name and version, and
    with JSON logs, the log format and the application log level."""
    variables = dict(properties.get("Environment", {}).get("Variables", {}))
    logging = properties.get("LoggingConfig", {})
    log_format = logging.get("LogFormat", "Text")
    variables["AWS_LAMBDA_FUNCTION_NAME"] = stack.ref(name)
    variables["AWS_LAMBDA_FUNCTION_VERSION"] = NEW_VERSION
    variables["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(properties.get("MemorySize", 128))
    variables["AWS_LAMBDA_LOG_FORMAT"] = log_format
    if log_format == "JSON":
        variables["AWS_LAMBDA_LOG_LEVEL"] = logging.get("ApplicationLogLevel", "INFO")
    return {k: str(v) for k, v in variables.items()}


def deployment(environment, sam):
    stack = stack_for(environment, sam)
    functions = {}
    for name, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = stack.properties(name)
        logging = properties.get("LoggingConfig", {})
        reserved = properties.get("ReservedConcurrentExecutions")
        functions[resource["Metadata"]["BuildProperties"]["Binary"]] = {
            "name": stack.ref(name),
            "version": NEW_VERSION,
            "environment": function_environment(stack, name, properties),
            "system_log_level": logging.get("SystemLogLevel", "INFO"),
            "log_group": logging.get("LogGroup", f"/aws/lambda/{stack.ref(name)}"),
            "reserved_concurrency": int(reserved) if reserved is not None else None,
            "rollback_alarms": [a["Ref"] for a in resource["Properties"]["DeploymentPreference"]["Alarms"]],
        }
    metric_filters = [
        {
            "log_group": properties["LogGroupName"],
            "pattern": properties["FilterPattern"],
            "metrics": [
                {
                    "namespace": t["MetricNamespace"],
                    "name": t["MetricName"],
                    "value": t["MetricValue"],
                    "dimensions": {d["Key"]: d["Value"] for d in t.get("Dimensions", [])},
                }
                for t in properties["MetricTransformations"]
            ],
        }
        for properties in (stack.properties(n) for n in stack.of_type("AWS::Logs::MetricFilter"))
    ]
    alarms = {name: stack.properties(name) for name in stack.of_type("AWS::CloudWatch::Alarm")}
    api = next(iter(stack.of_type("AWS::ApiGatewayV2::Api")))
    stage = next(iter(stack.of_type("AWS::ApiGatewayV2::Stage")))
    return {
        "stack": stack.stack_name,
        "api_id": stack.ref(api),
        "stage_burst": int(stack.properties(stage)["DefaultRouteSettings"]["ThrottlingBurstLimit"]),
        "functions": functions,
        "metric_filters": metric_filters,
        "alarms": alarms,
    }


if __name__ == "__main__":
    sam = sam_template()
    print(json.dumps({environment: deployment(environment, sam) for environment in environments()}, indent=1))
