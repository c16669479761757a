"""EventBridge event patterns: every matcher, AND/OR, arrays, and invalid patterns
refused with a message that names the problem and its path."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.errors import InvalidRequest
from slipway.observe.patterns import matches, validate_pattern

EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "AppRunner Service Operation Status Change",
    "source": "aws.apprunner",
    "account": "111122223333",
    "time": "2021-04-29T18:43:48Z",
    "region": "us-east-2",
    "resources": [
        "arn:aws:apprunner:us-east-2:111122223333:service/my-app/8fe1e10304f84fd2b0df550fe98a71fa"
    ],
    "detail": {
        "operationStatus": "DeploymentFailed",
        "serviceName": "my-app",
        "serviceId": "8fe1e10304f84fd2b0df550fe98a71fa",
        "message": "Deployment failed. For details, see service logs.",
        "severity": "ERROR",
        "count": 3,
        "ratio": 0.5,
        "empty": "",
        "nothing": None,
        "flag": True,
        "ip": "10.0.0.17",
        "nested": {"inner": "x"},
        "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}],
    },
}


def ok(pattern: dict[str, Any], event: dict[str, Any] = EVENT) -> bool:
    validate_pattern(pattern)
    return matches(pattern, event)


def test_guide_example_patterns() -> None:
    failed = {
        "detail-type": ["AppRunner Service Operation Status Change"],
        "source": ["aws.apprunner"],
        "account": ["111122223333"],
        "detail": {
            "operationStatus": [
                "CreateServiceFailed",
                "DeleteServiceFailed",
                "UpdateServiceFailed",
                "DeploymentFailed",
                "PauseServiceFailed",
                "ResumeServiceFailed",
            ]
        },
    }
    assert ok(failed)
    assert not ok({**failed, "account": ["444455556666"]})


def test_exact_values_or_within_list_and_across_keys() -> None:
    assert ok({"source": ["aws.ec2", "aws.apprunner"]})
    assert not ok({"source": ["aws.ec2"]})
    assert ok({"source": ["aws.apprunner"], "region": ["us-east-2"]})
    assert not ok({"source": ["aws.apprunner"], "region": ["eu-west-1"]})
    assert not ok({"missing": ["x"]})


def test_exact_match_keeps_json_types() -> None:
    assert ok({"detail": {"count": [3]}})
    assert not ok({"detail": {"count": ["3"]}})
    assert not ok({"detail": {"count": [3.0]}})  # EventBridge compares number text
    assert ok({"detail": {"flag": [True]}})
    assert not ok({"detail": {"flag": [1]}})
    assert ok({"detail": {"nothing": [None]}})
    assert not ok({"detail": {"empty": [None]}})  # null and "" are not interchangeable
    assert ok({"detail": {"empty": [""]}})
    assert not ok({"detail": {"missing": [None]}})


def test_case_sensitive_strings() -> None:
    assert not ok({"detail": {"severity": ["error"]}})
    assert ok({"detail": {"severity": [{"equals-ignore-case": "error"}]}})


def test_arrays_in_the_event_match_if_any_element_does() -> None:
    assert ok({"resources": [{"prefix": "arn:aws:apprunner:us-east-2:"}]})
    assert ok({"resources": ["nope", EVENT["resources"][0]]})
    assert not ok({"resources": ["nope"]})


def test_nested_objects_and_arrays_of_objects() -> None:
    assert ok({"detail": {"nested": {"inner": ["x"]}}})
    assert not ok({"detail": {"nested": {"inner": ["y"]}}})
    assert ok({"detail": {"items": {"name": ["b"], "n": [2]}}})
    # Both fields must come from the same element.
    assert not ok({"detail": {"items": {"name": ["a"], "n": [2]}}})


def test_prefix_and_suffix() -> None:
    assert ok({"detail": {"operationStatus": [{"prefix": "Deploy"}]}})
    assert not ok({"detail": {"operationStatus": [{"prefix": "deploy"}]}})
    assert ok({"detail": {"operationStatus": [{"prefix": {"equals-ignore-case": "deploy"}}]}})
    assert ok({"detail": {"operationStatus": [{"suffix": "Failed"}]}})
    assert ok({"detail": {"operationStatus": [{"suffix": {"equals-ignore-case": "FAILED"}}]}})
    assert not ok({"detail": {"count": [{"prefix": "3"}]}})  # strings only


def test_anything_but() -> None:
    status = ["detail", "operationStatus"]

    def p(arg: Any) -> dict[str, Any]:
        return {status[0]: {status[1]: [{"anything-but": arg}]}}

    assert ok(p("DeploymentCompletedSuccessfully"))
    assert not ok(p("DeploymentFailed"))
    assert not ok(p(["CreateServiceFailed", "DeploymentFailed"]))
    assert ok(p(["CreateServiceFailed", "UpdateServiceFailed"]))
    assert not ok(p({"prefix": "Deploy"}))
    assert ok(p({"prefix": "Pause"}))
    assert not ok(p({"suffix": "Failed"}))
    assert not ok(p({"equals-ignore-case": "deploymentfailed"}))
    assert not ok(p({"wildcard": "Deploy*"}))
    assert ok({"detail": {"count": [{"anything-but": [1, 2]}]}})
    assert not ok({"detail": {"count": [{"anything-but": 3}]}})
    # A field that is absent is not "anything but".
    assert not ok({"detail": {"missing": [{"anything-but": "x"}]}})


def test_numeric() -> None:
    assert ok({"detail": {"count": [{"numeric": [">", 0, "<=", 5]}]}})
    assert not ok({"detail": {"count": [{"numeric": [">", 3, "<=", 5]}]}})
    assert ok({"detail": {"count": [{"numeric": ["=", 3]}]}})
    assert ok({"detail": {"count": [{"numeric": ["=", 3.0]}]}})
    assert ok({"detail": {"ratio": [{"numeric": [">=", 0.5]}]}})
    assert not ok({"detail": {"ratio": [{"numeric": ["<", 0.5]}]}})
    assert not ok({"detail": {"serviceName": [{"numeric": [">", 0]}]}})
    assert not ok({"detail": {"flag": [{"numeric": ["=", 1]}]}})  # booleans are not numbers


def test_exists() -> None:
    assert ok({"detail": {"severity": [{"exists": True}]}})
    assert not ok({"detail": {"severity": [{"exists": False}]}})
    assert ok({"detail": {"missing": [{"exists": False}]}})
    assert not ok({"detail": {"missing": [{"exists": True}]}})
    assert ok({"detail": {"nothing": [{"exists": True}]}})  # null is a value
    # Exists works on leaves only: an object is not a leaf.
    assert ok({"detail": {"nested": [{"exists": False}]}})
    assert ok({"absent": {"deeper": [{"exists": False}]}})


def test_wildcard_cidr_and_or() -> None:
    assert ok({"detail": {"operationStatus": [{"wildcard": "Deploy*Failed"}]}})
    assert not ok({"detail": {"operationStatus": [{"wildcard": "Pause*"}]}})
    assert ok({"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}})
    assert not ok({"detail": {"ip": [{"cidr": "10.0.1.0/24"}]}})
    assert ok({"$or": [{"source": ["aws.ec2"]}, {"detail": {"severity": ["ERROR"]}}]})
    assert not ok({"$or": [{"source": ["aws.ec2"]}, {"detail": {"severity": ["INFO"]}}]})


def test_values_and_matchers_mix_in_one_list() -> None:
    assert ok({"detail": {"severity": ["INFO", {"prefix": "ERR"}]}})
    assert ok({"detail": {"missing": ["x", {"exists": False}]}})


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ([], "pattern: expected a JSON object"),
        ({}, "pattern: must name at least one field"),
        ({"detail": {"severity": "ERROR"}}, "pattern.detail.severity: expected a list of values"),
        ({"source": []}, "pattern.source: a list of values must not be empty"),
        ({"detail": {}}, "pattern.detail: must name at least one field"),
        ({"source": [["a"]]}, "pattern.source[0]: lists cannot nest"),
        ({"source": [{"prefx": "a"}]}, "pattern.source[0].prefx: unknown matcher"),
        ({"source": [{"prefix": "a", "suffix": "b"}]}, "exactly one matcher"),
        ({"source": [{"prefix": 3}]}, "pattern.source[0].prefix: expected a string"),
        ({"n": [{"numeric": [">", "a"]}]}, "pattern.n[0].numeric: 'a' is not a number"),
        ({"n": [{"numeric": ["<", 5, ">", 0]}]}, "a lower bound then an upper"),
        ({"n": [{"numeric": [">", 5, "<", 1]}]}, "lower bound must be below the upper"),
        ({"n": [{"numeric": ["!=", 5]}]}, "unknown operator '!='"),
        ({"n": [{"numeric": [">", 2e9]}]}, "outside -1e9..1e9"),
        ({"n": [{"exists": "yes"}]}, "pattern.n[0].exists: expected true or false"),
        ({"n": [{"anything-but": ["a", 1]}]}, "a list of only one of those"),
        ({"n": [{"anything-but": []}]}, "must not be empty"),
        ({"n": [{"anything-but": {"numeric": [">", 1]}}]}, "an object must hold one of"),
        ({"n": [{"cidr": "10.0.0.0/99"}]}, "pattern.n[0].cidr: '10.0.0.0/99' is not a CIDR"),
        ({"n": [{"wildcard": "a**b"}]}, "consecutive wildcard"),
        ({"$or": [{"a": ["b"]}]}, "pattern.$or: expected a list of at least two patterns"),
        ({"$or": [{"a": ["b"]}, {"c": "d"}]}, "pattern.$or[1].c: expected a list"),
    ],
)
def test_invalid_patterns_name_problem_and_path(pattern: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_pattern(pattern)
    assert message in caught.value.message
