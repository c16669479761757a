"""Input validation against botocore's apprunner model, plus slipway's overrides."""

from __future__ import annotations

import copy
import re

import pytest

from slipway.api import validate as v
from slipway.errors import InvalidRequest

DIGEST = "sha256:" + "0123456789abcdef" * 4


def image_service(identifier: str = "127.0.0.1:5000/hello:v1", **image_config) -> dict:
    return {
        "ServiceName": "hello-svc",
        "SourceConfiguration": {
            "ImageRepository": {
                "ImageIdentifier": identifier,
                "ImageRepositoryType": "ECR_PUBLIC",
                "ImageConfiguration": {"Port": "8080", **image_config},
            },
            "AutoDeploymentsEnabled": True,
        },
    }


def with_(params: dict, path: str, value) -> dict:
    """A deep copy of ``params`` with the dotted ``path`` set (or removed if value is DEL)."""
    out = copy.deepcopy(params)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is DEL:
        del node[last]
    else:
        node[last] = value
    return out


DEL = object()
IMAGE = "SourceConfiguration.ImageRepository"
PORT = IMAGE + ".ImageConfiguration.Port"


def rejected(operation: str, params) -> str:
    with pytest.raises(InvalidRequest) as info:
        v.validate_input(operation, params)
    return info.value.message


# --- well-formed input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier",
    [
        "127.0.0.1:5000/hello:v1",
        "localhost:5000/hello",
        "localhost/team/hello:latest",
        "registry.example.com/team/sub/app:1.2.3-rc_1",
        "Registry.Example.com:443/app",
        "[::1]:5000/hello:v1",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-repo:latest",
        "123456789012.dkr.ecr.eu-west-3.amazonaws.com/ns/my_repo.x__y--z",
        "public.ecr.aws/aws-containers/hello-app-runner:latest",
        f"123456789012.dkr.ecr.us-east-1.amazonaws.com/my-repo@{DIGEST}",
        f"127.0.0.1:5000/hello@{DIGEST}",
        f"127.0.0.1:5000/hello:v1@{DIGEST}",
    ],
)
def test_image_identifiers_accepted(identifier):
    v.validate_input("CreateService", image_service(identifier))


def test_full_image_service_passes():
    params = image_service(
        RuntimeEnvironmentVariables={
            "GREETING": "hi",
            "PEM": "-----BEGIN-----\nabc\n-----END-----",
        },
        StartCommand="python -m app",
    )
    params["InstanceConfiguration"] = {"Cpu": "1 vCPU", "Memory": "2 GB"}
    params["HealthCheckConfiguration"] = {
        "Protocol": "HTTP",
        "Path": "/healthz",
        "Interval": 5,
        "Timeout": 2,
        "HealthyThreshold": 1,
        "UnhealthyThreshold": 5,
    }
    params["Tags"] = [{"Key": "team", "Value": "web"}, {"Key": "env", "Value": ""}]
    v.validate_input("CreateService", params)


def test_code_service_passes():
    v.validate_input(
        "CreateService",
        {
            "ServiceName": "py-app",
            "SourceConfiguration": {
                "CodeRepository": {
                    "RepositoryUrl": "https://github.com/acme/app",
                    "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
                    "CodeConfiguration": {
                        "ConfigurationSource": "API",
                        "CodeConfigurationValues": {
                            "Runtime": "PYTHON_311",
                            "BuildCommand": "pip install -r requirements.txt",
                            "StartCommand": "python app.py",
                            "Port": "8000",
                        },
                    },
                },
                "AuthenticationConfiguration": {
                    "ConnectionArn": "arn:aws:apprunner:us-east-1:000000000000:connection/gh/abc"
                },
            },
        },
    )


@pytest.mark.parametrize("port", ["1", "80", "8080", "65535"])
def test_ports_in_range_pass(port):
    v.validate_input("CreateService", image_service(Port=port))


@pytest.mark.parametrize("params", [{}, {"MaxResults": 1}, {"MaxResults": 20, "NextToken": "x"}])
def test_list_services_passes(params):
    v.validate_input("ListServices", params)


def test_null_optional_member_is_absent():
    v.validate_input("ListServices", {"MaxResults": None, "NextToken": None})


# --- bad input, each naming its field --------------------------------------------------


def test_missing_service_name():
    msg = rejected("CreateService", with_(image_service(), "ServiceName", DEL))
    assert msg == (
        "1 validation error detected: Value null at 'ServiceName' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_null_required_member():
    msg = rejected("CreateService", with_(image_service(), "ServiceName", None))
    assert "Value null at 'ServiceName'" in msg


@pytest.mark.parametrize("name", ["hello world", "héllo-svc", "../etc", "-abc", "a/b/c", "abc"])
def test_service_name_pattern(name):
    msg = rejected("CreateService", with_(image_service(), "ServiceName", name))
    assert f"Value '{name}' at 'ServiceName' failed to satisfy constraint" in msg
    assert "Member must satisfy regular expression pattern: [A-Za-z0-9][A-Za-z0-9-_]{3,39}" in msg


def test_service_name_too_long_reports_every_constraint():
    name = "a" * 60
    msg = rejected("CreateService", with_(image_service(), "ServiceName", name))
    assert msg.startswith("2 validation errors detected: ")
    assert (
        "at 'ServiceName' failed to satisfy constraint: "
        "Member must have length less than or equal to 40" in msg
    )
    assert "Member must satisfy regular expression pattern" in msg


def test_unknown_enum_value():
    msg = rejected("CreateService", with_(image_service(), IMAGE + ".ImageRepositoryType", "FOO"))
    assert msg == (
        "1 validation error detected: Value 'FOO' at "
        "'SourceConfiguration.ImageRepository.ImageRepositoryType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [ECR, ECR_PUBLIC]"
    )


@pytest.mark.parametrize("port", ["-1", "0", "65536", "99999", "abc", "08080", "", "80 ", "8080\n"])
def test_bad_port(port):
    msg = rejected("CreateService", image_service(Port=port))
    assert f"at '{PORT}' failed to satisfy constraint" in msg
    assert "Member must be a TCP port number from 1 to 65535" in msg


def test_port_as_number_is_a_type_error():
    msg = rejected("CreateService", image_service(Port=8080))
    assert f"Value '8080' at '{PORT}' failed to satisfy constraint: Member must be a string" in msg


def test_code_port_is_checked_too():
    params = {
        "ServiceName": "py-app",
        "SourceConfiguration": {
            "CodeRepository": {
                "RepositoryUrl": "https://github.com/acme/app",
                "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
                "CodeConfiguration": {
                    "ConfigurationSource": "API",
                    "CodeConfigurationValues": {"Runtime": "PYTHON_311", "Port": "70000"},
                },
            }
        },
    }
    msg = rejected("CreateService", params)
    path = "SourceConfiguration.CodeRepository.CodeConfiguration.CodeConfigurationValues.Port"
    assert f"at '{path}'" in msg


@pytest.mark.parametrize("cpu", ["3 vCPU", "1vCPU", "100", "1 VCPU"])
def test_bad_cpu(cpu):
    params = image_service()
    params["InstanceConfiguration"] = {"Cpu": cpu}
    msg = rejected("CreateService", params)
    assert f"Value '{cpu}' at 'InstanceConfiguration.Cpu' failed to satisfy constraint" in msg


def test_bad_memory_length_and_pattern():
    params = image_service()
    params["InstanceConfiguration"] = {"Memory": "7 GB"}
    msg = rejected("CreateService", params)
    assert "at 'InstanceConfiguration.Memory'" in msg


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        "hello:v1",  # no registry host
        "hello/world:v1",  # first component is not a host
        "127.0.0.1:5000/Hello:v1",  # uppercase repository
        "127.0.0.1:5000/hello world:v1",
        "127.0.0.1:5000/a/../b",
        "127.0.0.1:5000/a..b",
        "127.0.0.1:5000/",
        "127.0.0.1:5000/hello:",
        "127.0.0.1:5000/hello@sha256:abc",
        f"127.0.0.1:5000/hello@sha256:{'A' * 64}",
        "public.ecr.aws/a b/c",
        "http://127.0.0.1:5000/hello",
        " 127.0.0.1:5000/hello",
    ],
)
def test_image_identifiers_rejected(identifier):
    msg = rejected("CreateService", image_service(identifier))
    assert f"at '{IMAGE}.ImageIdentifier' failed to satisfy constraint" in msg
    if identifier:
        assert "Member must be an image reference host[:port]/repository" in msg


def test_image_identifier_too_long():
    msg = rejected("CreateService", image_service("127.0.0.1:5000/" + "a" * 1020))
    assert "Member must have length less than or equal to 1024" in msg


def test_unknown_member_top_level_and_nested():
    params = image_service()
    params["Colour"] = "blue"
    params["SourceConfiguration"]["ImageRepository"]["Registry"] = "x"
    msg = rejected("CreateService", params)
    assert msg.startswith("2 validation errors detected: ")
    assert "Value 'blue' at 'Colour' failed to satisfy constraint: Member is not recognized" in msg
    assert f"at '{IMAGE}.Registry' failed to satisfy constraint: Member is not recognized" in msg


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("ServiceName", 5, "Member must be a string, not a number"),
        ("SourceConfiguration.AutoDeploymentsEnabled", "yes", "Member must be a boolean"),
        ("SourceConfiguration", [], "Member must be a JSON object, not a JSON array"),
        ("Tags", {"Key": "a"}, "Member must be a JSON array, not a JSON object"),
        (
            IMAGE + ".ImageConfiguration.RuntimeEnvironmentVariables",
            ["A=1"],
            "Member must be a JSON object",
        ),
    ],
)
def test_wrong_types(path, value, expected):
    msg = rejected("CreateService", with_(image_service(), path, value))
    assert f"at '{path}' failed to satisfy constraint: {expected}" in msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "Member must have value greater than or equal to 1"),
        (21, "Member must have value less than or equal to 20"),
        (-5, "Member must have value greater than or equal to 1"),
        ("5", "Member must be an integer, not a string"),
        (True, "Member must be an integer, not a boolean"),
        (2.5, "Member must be an integer, not a number"),
    ],
)
def test_max_results_range(value, expected):
    msg = rejected("ListServices", {"MaxResults": value})
    assert f"at 'MaxResults' failed to satisfy constraint: {expected}" in msg


def test_integer_range_in_nested_structure():
    params = image_service()
    params["HealthCheckConfiguration"] = {"Interval": 21, "Timeout": 0}
    msg = rejected("CreateService", params)
    assert msg.startswith("2 validation errors detected: ")
    assert "Value '21' at 'HealthCheckConfiguration.Interval'" in msg
    assert "Value '0' at 'HealthCheckConfiguration.Timeout'" in msg


def test_list_elements_are_checked_with_index():
    params = image_service()
    params["Tags"] = [{"Key": "ok", "Value": "v"}, {"Key": "aws:reserved"}, None, {"Nope": 1}]
    msg = rejected("CreateService", params)
    assert "Value 'aws:reserved' at 'Tags[1].Key'" in msg
    assert "Value null at 'Tags[2]' failed to satisfy constraint: Member must not be null" in msg
    assert "at 'Tags[3].Nope' failed to satisfy constraint: Member is not recognized" in msg


def test_list_of_strings():
    msg = rejected(
        "UntagResource",
        {
            "ResourceArn": "arn:aws:apprunner:us-east-1:000000000000:service/a/b",
            "TagKeys": ["fine", "", 7],
        },
    )
    assert "at 'TagKeys[1]' failed to satisfy constraint: Member must have length greater" in msg
    assert "Value '7' at 'TagKeys[2]' failed to satisfy constraint: Member must be a string" in msg


def test_map_keys_and_values_are_checked_and_sensitive_values_hidden():
    params = image_service(RuntimeEnvironmentVariables={"": "x", "TOKEN": 42, "OK": "fine"})
    msg = rejected("CreateService", params)
    env = IMAGE + ".ImageConfiguration.RuntimeEnvironmentVariables"
    assert msg.startswith("2 validation errors detected: ")
    assert (
        f"Value '***' at '{env}' failed to satisfy constraint: Map keys must satisfy "
        "constraint: [Member must have length greater than or equal to 1]"
    ) in msg
    assert (
        f"Value '***' at '{env}.TOKEN' failed to satisfy constraint: Member must be a string" in msg
    )
    assert "42" not in msg


def test_params_must_be_an_object():
    msg = rejected("ListServices", ["MaxResults", 5])
    assert (
        msg == "1 validation error detected: Request body must be a JSON object, not a JSON array"
    )


def test_unknown_operation():
    with pytest.raises(InvalidRequest, match="Unknown operation: 'LaunchRocket'"):
        v.validate_input("LaunchRocket", {})


def test_the_arn_pattern_is_enforced():
    msg = rejected("DescribeService", {"ServiceArn": "not-an-arn"})
    assert "Value 'not-an-arn' at 'ServiceArn' failed to satisfy constraint" in msg


def test_long_values_are_truncated_in_messages():
    msg = rejected("CreateService", with_(image_service(), "ServiceName", "x y" * 100))
    assert "x y" * 100 not in msg
    assert "...' at 'ServiceName'" in msg


# --- model helpers -----------------------------------------------------------------------


def test_operation_names():
    names = v.operation_names()
    assert "CreateService" in names and "ListOperations" in names and "StartDeployment" in names
    assert len(names) == len(set(names)) >= 30


def test_output_shape_members():
    assert v.output_shape_members("CreateService") == ["Service", "OperationId"]
    assert "ServiceSummaryList" in v.output_shape_members("ListServices")


def test_every_model_pattern_compiles():
    model = v._model()
    for name in model.shape_names:
        pattern = model.shape_for(name).metadata.get("pattern")
        if pattern is not None:
            v._compiled(pattern)
    for pattern in [*v.PATTERN_OVERRIDES.values(), *v.MEMBER_PATTERN_OVERRIDES.values()]:
        re.compile(pattern)


def test_override_keys_exist_in_model():
    model = v._model()
    for shape_name in v.PATTERN_OVERRIDES:
        assert model.shape_for(shape_name).type_name == "string"
    for structure, member in v.MEMBER_PATTERN_OVERRIDES:
        assert member in model.shape_for(structure).members
