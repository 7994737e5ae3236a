"""What names each function's published version, so that every change a deployment makes to a
function reaches its `live` alias.

SAM names a function's version after a hash of the function's properties as written, parameter
references unresolved: a new value of `LogLevel` (or of any parameter) gives the same name, so
CloudFormation publishes no version and the alias keeps the old one. When a function names an
`AutoPublishCodeSha256`, SAM resolves its parameter references and takes its first 10 characters
as the whole name instead (code and properties no longer count). So the template sets it to the
`ReleaseDigest` parameter, and `cargo xtask deploy` passes a digest of what each function will
run: its built code and its properties as CloudFormation will resolve them with the stack's
parameter values. Empty (a plain `sam deploy`), SAM's own hash of code and properties applies.

    python tests/template/versions.py <samconfig environment> <sam build directory>

prints the `--parameter-overrides` for `sam deploy`: the environment's own, and the digest.
"""

import copy
import hashlib
import json
import pathlib
import sys

from cfn import Stack, environments, sam_template, transformed


def binaries(sam):
    """Each function's logical id -> the binary it runs."""
    return {
        name: resource["Metadata"]["BuildProperties"]["Binary"]
        for name, resource in sam["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def release_digest(sam, stack_name, parameters, code):
    """A digest of every function's code (`code`: binary -> its SHA-256) and properties, resolved
    with `parameters` as the stack `stack_name` will resolve them."""
    parameters = {k: v for k, v in parameters.items() if k != "ReleaseDigest"}
    stack = Stack(transformed(sam, parameters), stack_name, parameters)
    functions = {}
    for function, binary in binaries(sam).items():
        properties = stack.properties(function)
        properties.pop("Code")
        functions[binary] = {"code": code[binary], "properties": properties}
    text = json.dumps(functions, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def published_versions(sam, parameters):
    """The version each function would publish: function logical id -> version logical id."""
    cfn = transformed(sam, parameters)
    return {
        resource["Properties"]["FunctionName"]["Ref"]: name
        for name, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Version"
    }


def check_versions(check):
    """Pairs of deployments that differ in parameter values, in properties, or in code each
    publish new versions of every function; the same deployment twice, or a change that reaches
    no function, publishes none."""
    sam = sam_template()
    stack_name, base = environments()["prod"]
    code = {binary: hashlib.sha256(binary.encode()).hexdigest() for binary in binaries(sam).values()}

    def versions(template, parameters, code):
        # As `sam package` uploads it: each build's code under a key of its own content.
        template = copy.deepcopy(template)
        for function, binary in binaries(template).items():
            template["Resources"][function]["Properties"]["CodeUri"] = f"s3://bucket/{code[binary]}"
        digest = release_digest(template, stack_name, parameters, code)
        return published_versions(template, {**parameters, "ReleaseDigest": digest})

    def differ(name, one, other):
        same = {f for f in one if one[f] == other.get(f)}
        check(not same and set(one) == set(other), f"{name}: {sorted(same)} publish no new version")

    first = versions(sam, base, code)
    check(first == versions(sam, base, code), "the same deployment twice publishes new versions")
    check(len(first) == len(binaries(sam)), f"versions {first}")

    louder = {**base, "LogLevel": "DEBUG" if base.get("LogLevel") != "DEBUG" else "INFO"}
    differ("a new LogLevel", first, versions(sam, louder, code))
    # What SAM alone would do: the same version for the new value, which is the bug.
    check(
        published_versions(sam, base) == published_versions(sam, louder),
        "SAM's own hash now counts parameter values: ReleaseDigest may no longer be needed",
    )
    rotated = {**base, "CursorKeyVersion": "c0ffee00-1111-2222-3333-444455556666"}
    check(
        versions(sam, rotated, code)["ListUsersFunction"] != first["ListUsersFunction"],
        "a cursor key rotation publishes no new list-users version",
    )

    longer = copy.deepcopy(sam)
    longer["Globals"]["Function"]["Timeout"] = sam["Globals"]["Function"]["Timeout"] + 1
    differ("a new Timeout", first, versions(longer, base, code))

    rebuilt = {binary: hashlib.sha256(digest.encode()).hexdigest() for binary, digest in code.items()}
    differ("new code", first, versions(sam, base, rebuilt))

    notified = {**base, "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:alarms"}
    check(versions(sam, notified, code) == first, "a change that reaches no function publishes new versions")


def main(environment, build_dir):
    sam = sam_template()
    stack_name, parameters = environments()[environment]
    code = {}
    for function, binary in binaries(sam).items():
        bootstrap = pathlib.Path(build_dir) / function / "bootstrap"
        code[binary] = hashlib.sha256(bootstrap.read_bytes()).hexdigest()
    digest = release_digest(sam, stack_name, parameters, code)
    values = {**parameters, "ReleaseDigest": digest}
    print(" ".join(f"{name}={value}" for name, value in values.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
