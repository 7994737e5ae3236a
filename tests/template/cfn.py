"""The template as a deployment would see it, offline: samconfig.toml's environments, SAM's
transform with an environment's parameter values, and the CloudFormation intrinsics of the
transformed template resolved as CloudFormation would resolve them for that stack.

Resources that exist only once deployed get stand-in physical ids: a resource's `Ref` is
`<stack>-<LogicalId>` (a log group's is its name), a published version's `Ref` is its ARN with
version `NEW_VERSION`, the version a deployment publishes and its canary judges.
"""

import copy
import os
import pathlib
import shlex
import tomllib

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
# The version a deployment publishes; the alias's previous one is "1".
NEW_VERSION = "2"
NO_VALUE = object()


class NoManagedPolicies:
    """Offline: the template names no managed policy that would need IAM to resolve."""

    def load(self):
        return {}


def sam_template(text=None):
    return yaml_parse(text if text is not None else (ROOT / "template.yaml").read_text())


def packaged(sam):
    """The template as `sam package` leaves it: each function's code in S3 (code already there
    stays where it is)."""
    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            if not str(resource["Properties"].get("CodeUri", "")).startswith("s3://"):
                resource["Properties"]["CodeUri"] = "s3://bucket/bootstrap.zip"
    return sam


def transformed(sam, parameters=None):
    """SAM's transform, as CloudFormation runs it with the stack's parameter values."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return transform(packaged(sam), dict(parameters or {}), NoManagedPolicies())


def environments():
    """samconfig.toml's environments that deploy: name -> (stack name, parameter values)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    found = {}
    for name, commands in config.items():
        if not isinstance(commands, dict) or "deploy" not in commands:
            continue
        stack = commands["deploy"]["parameters"].get("stack_name") or commands["global"]["parameters"]["stack_name"]
        found[name] = (stack, overrides(commands["deploy"]["parameters"].get("parameter_overrides", "")))
    return found


def sync_stacks():
    """The stack each environment's `sam sync --config-env` would update: its sync section's, or
    without one, the environment's global stack name."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    stacks = {}
    for name, commands in config.items():
        if isinstance(commands, dict):
            sync = commands.get("sync", {}).get("parameters", {})
            stacks[name] = sync.get("stack_name") or commands.get("global", {}).get("parameters", {}).get("stack_name")
    return stacks


def overrides(text):
    return dict(item.split("=", 1) for item in shlex.split(text))


class Stack:
    """A transformed template resolved for one stack with its parameter values."""

    def __init__(self, cfn, stack_name, parameters):
        self.cfn = cfn
        self.stack_name = stack_name
        values = {}
        for name, parameter in cfn.get("Parameters", {}).items():
            if "Default" in parameter:
                values[name] = str(parameter["Default"])
        values.update({k: str(v) for k, v in parameters.items()})
        for name, parameter in cfn.get("Parameters", {}).items():
            if parameter.get("Type") == "CommaDelimitedList" and name in values:
                values[name] = values[name].split(",")
        values.update({
            "AWS::StackName": stack_name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        })
        self.parameters = values
        self.resources = cfn["Resources"]
        self.conditions = {}
        for name in cfn.get("Conditions", {}):
            self.condition(name)

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self._condition(self.cfn["Conditions"][name]))
        return self.conditions[name]

    def _condition(self, value):
        (function, argument), = value.items()
        if function == "Fn::Equals":
            left, right = (self.resolve(a) for a in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self._condition(argument[0])
        if function == "Fn::And":
            return all(self._condition(a) for a in argument)
        if function == "Fn::Or":
            return any(self._condition(a) for a in argument)
        if function == "Condition":
            return self.condition(argument)
        raise ValueError(f"unknown condition {value}")

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        resource = self.resources[name]
        kind = resource["Type"]
        if kind == "AWS::Lambda::Version":
            function = self.ref(resource["Properties"]["FunctionName"]["Ref"])
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:{NEW_VERSION}"
        if kind == "AWS::Logs::LogGroup" and "LogGroupName" in resource["Properties"]:
            return self.resolve(resource["Properties"]["LogGroupName"])
        return f"{self.stack_name}-{name}"

    def get_att(self, name, attribute):
        if attribute == "Arn" and self.resources[name]["Type"] == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.ref(name)}"
        if attribute == "Version":
            return self.ref(name).rsplit(":", 1)[1]
        return f"{self.ref(name)}.{attribute}"

    def resolve(self, value):
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, argument), = value.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
                return self.get_att(name, attribute)
            if function == "Fn::If":
                name, then, otherwise = argument
                return self.resolve(then if self.condition(name) else otherwise)
            if function == "Fn::Sub":
                return self.sub(argument)
            if function == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if function == "Fn::Split":
                separator, text = argument
                return self.resolve(text).split(separator)
            if function == "Fn::Join":
                separator, items = argument
                return separator.join(str(i) for i in self.resolve(items))
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def sub(self, argument):
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {k: self.resolve(v) for k, v in variables.items()}
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            out.append(text[i:start])
            end = text.index("}", start)
            name = text[start + 2:end]
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in variables:
                out.append(str(variables[name]))
            elif "." in name and name.split(".", 1)[0] in self.resources:
                out.append(str(self.get_att(*name.split(".", 1))))
            else:
                out.append(str(self.ref(name)))
            i = end + 1
        return "".join(out)

    def of_type(self, kind):
        return {n: r for n, r in self.resources.items() if r["Type"] == kind and self._present(r)}

    def _present(self, resource):
        return "Condition" not in resource or self.condition(resource["Condition"])

    def properties(self, name):
        return self.resolve(self.resources[name].get("Properties", {}))


def stack_for(environment, sam=None):
    """The resolved stack of a samconfig.toml environment."""
    stack_name, parameters = environments()[environment]
    sam = sam if sam is not None else sam_template()
    return Stack(transformed(sam, parameters), stack_name, parameters)


