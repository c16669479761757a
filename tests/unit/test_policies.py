"""Access policies: what a document may say (each refusal names its field), and how IAM
evaluates them (explicit deny wins, default deny, wildcards, tag conditions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slipway.errors import InvalidRequest
from slipway.policies import (
    READY_MADE,
    SLIPWAY_ACTIONS,
    AccessRequest,
    apprunner_actions,
    evaluate,
    loads,
    parse,
)

REGION, ACCOUNT = "us-east-1", "000000000000"
SVC = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/web/0123"


def policy(*statements: dict[str, Any]) -> Any:
    return parse(
        {"Version": "2012-10-17", "Statement": list(statements)}, region=REGION, account=ACCOUNT
    )


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(policies: list[Any], action: str, resource: str = SVC, **kw: Any) -> str:
    return evaluate(policies, AccessRequest(action, resource, **kw))


def test_default_deny() -> None:
    assert decide([], "apprunner:DescribeService") == "ImplicitDeny"
    assert decide([policy(allow("apprunner:ListServices"))], "apprunner:DeleteService") == (
        "ImplicitDeny"
    )


def test_explicit_deny_wins_over_any_allow() -> None:
    policies = [policy(allow("*")), policy(deny("apprunner:DeleteService"))]
    assert decide(policies, "apprunner:DeleteService") == "ExplicitDeny"
    assert decide(policies, "apprunner:PauseService") == "Allow"


def test_action_wildcards_and_case() -> None:
    p = [policy(allow(["apprunner:Describe*", "slipway:Read?ogs"]))]
    assert decide(p, "apprunner:DescribeService") == "Allow"
    assert decide(p, "apprunner:describecustomdomains") == "Allow"  # actions ignore case
    assert decide(p, "slipway:ReadLogs") == "Allow"
    assert decide(p, "apprunner:ListServices") == "ImplicitDeny"
    assert decide([policy(allow("apprunner:*"))], "slipway:CreateKey") == "ImplicitDeny"


def test_resource_wildcards() -> None:
    p = [policy(allow("apprunner:*", f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/web/*"))]
    assert decide(p, "apprunner:PauseService") == "Allow"
    other = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/db/9"
    assert decide(p, "apprunner:PauseService", other) == "ImplicitDeny"
    assert decide(p, "apprunner:ListServices", "*") == "ImplicitDeny"


def test_resource_tag_conditions() -> None:
    p = [policy(allow("apprunner:*", Condition={"StringEquals": {"aws:ResourceTag/team": "web"}}))]
    assert decide(p, "apprunner:PauseService", resource_tags={"team": "web"}) == "Allow"
    assert decide(p, "apprunner:PauseService", resource_tags={"team": "db"}) == "ImplicitDeny"
    # A key the resource lacks does not match, as in IAM.
    assert decide(p, "apprunner:PauseService") == "ImplicitDeny"


def test_request_tags_string_like_and_values_ored() -> None:
    p = [
        policy(
            allow(
                "apprunner:CreateService",
                Condition={"StringLike": {"aws:RequestTag/team": ["web*", "api"]}},
            )
        )
    ]
    assert decide(p, "apprunner:CreateService", request_tags={"team": "web-2"}) == "Allow"
    assert decide(p, "apprunner:CreateService", request_tags={"team": "api"}) == "Allow"
    assert decide(p, "apprunner:CreateService", request_tags={"team": "db"}) == "ImplicitDeny"


def test_conditions_are_anded() -> None:
    p = [
        policy(
            allow(
                "*",
                Condition={
                    "StringEquals": {"aws:ResourceTag/team": "web", "aws:ResourceTag/env": "dev"}
                },
            )
        )
    ]
    assert decide(p, "apprunner:PauseService", resource_tags={"team": "web"}) == "ImplicitDeny"
    both = {"team": "web", "env": "dev"}
    assert decide(p, "apprunner:PauseService", resource_tags=both) == "Allow"


def test_deny_with_condition_only_denies_where_it_holds() -> None:
    p = [
        policy(allow("*")),
        policy(deny("*", Condition={"StringEquals": {"aws:ResourceTag/locked": "yes"}})),
    ]
    assert decide(p, "apprunner:DeleteService", resource_tags={"locked": "yes"}) == "ExplicitDeny"
    assert decide(p, "apprunner:DeleteService", resource_tags={"locked": "no"}) == "Allow"


def test_ready_made_policies() -> None:
    ready = {n: parse(d, region=REGION, account=ACCOUNT) for n, d in READY_MADE.items()}
    admin, deployer, read_only = ready["administrator"], ready["deployer"], ready["read-only"]
    assert decide([admin], "slipway:CreateKey", "*") == "Allow"
    for action in ("StartDeployment", "PauseService", "ResumeService", "DescribeService"):
        assert decide([deployer], f"apprunner:{action}") == "Allow"
    assert decide([deployer], "slipway:Rollback") == "Allow"
    for action in ("apprunner:DeleteService", "apprunner:CreateService", "slipway:CreateKey"):
        assert decide([deployer], action) == "ImplicitDeny"
    assert decide([read_only], "apprunner:ListServices", "*") == "Allow"
    assert decide([read_only], "apprunner:ListOperations") == "Allow"
    for action in ("apprunner:CreateService", "apprunner:StartDeployment", "slipway:PutSecret"):
        assert decide([read_only], action) == "ImplicitDeny"


def test_every_known_action_is_nameable() -> None:
    assert "CreateService" in apprunner_actions()
    for action in sorted(apprunner_actions()):
        policy(allow(f"apprunner:{action}"))
    for action in sorted(SLIPWAY_ACTIONS):
        policy(allow(f"slipway:{action}"))


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], "PolicyDocument"),
        ({"Statement": []}, "PolicyDocument.Statement"),
        ({"Version": "2020-01-01", "Statement": [allow("*")]}, "PolicyDocument.Version"),
        ({"Statement": [allow("*")], "Extra": 1}, "PolicyDocument.Extra"),
        ({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}, "Effect"),
        ({"Statement": [{"Effect": "Allow", "Resource": "*"}]}, "Statement[0].Action"),
        ({"Statement": [allow("apprunner:DestroyEverything")]}, "Statement[0].Action"),
        ({"Statement": [allow("s3:GetObject")]}, "Statement[0].Action"),
        ({"Statement": [allow("apprunner:Bogus*")]}, "Statement[0].Action"),
        ({"Statement": [allow("slipway:LaunchMissiles")]}, "Statement[0].Action"),
        ({"Statement": [allow("*", [])]}, "Statement[0].Resource"),
        ({"Statement": [allow("*", "service/web")]}, "Statement[0].Resource"),
        ({"Statement": [allow("*", "arn:aws:s3:::bucket/*")]}, "Statement[0].Resource"),
        (
            {"Statement": [allow("*", f"arn:aws:apprunner:eu-west-1:{ACCOUNT}:service/*")]},
            "region",
        ),
        (
            {"Statement": [allow("*", f"arn:aws:apprunner:{REGION}:123456789012:service/*")]},
            "account",
        ),
        (
            {"Statement": [allow("*", f"arn:aws-cn:apprunner:{REGION}:{ACCOUNT}:service/*")]},
            "partition",
        ),
        (
            {
                "Statement": [
                    allow("*", Condition={"StringNotEquals": {"aws:ResourceTag/team": "x"}})
                ]
            },
            "Statement[0].Condition.StringNotEquals",
        ),
        (
            {"Statement": [allow("*", Condition={"StringEquals": {"aws:SourceIp": "1.2.3.4"}})]},
            "Statement[0].Condition.StringEquals.aws:SourceIp",
        ),
        (
            {"Statement": [allow("*", Condition={"StringEquals": {"aws:ResourceTag/t": 3}})]},
            "Statement[0].Condition.StringEquals.aws:ResourceTag/t",
        ),
        ({"Statement": [allow("*", NotResource="*")]}, "Statement[0].NotResource"),
        ({"Statement": [allow("*"), "nope"]}, "Statement[1]"),
    ],
)
def test_bad_documents_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(document, region=REGION, account=ACCOUNT)
    assert field in caught.value.message


def test_wildcards_in_arn_parts_that_can_match_are_fine() -> None:
    policy(allow("*", "arn:aws:apprunner:*:*:service/*"))
    policy(allow("*", f"arn:aws:slipway:{REGION}:{ACCOUNT}:secret/db-*"))
    policy(allow("*", f"arn:aws:*:us-east-?:{ACCOUNT}:*"))


def test_loads_refuses_malformed_json() -> None:
    with pytest.raises(InvalidRequest, match="PolicyDocument: not valid JSON"):
        loads("{Statement: ", region=REGION, account=ACCOUNT)
    assert loads(json.dumps(READY_MADE["deployer"]), region=REGION, account=ACCOUNT)


def test_a_single_statement_object_is_accepted() -> None:
    p = parse({"Statement": allow("apprunner:List*")}, region=REGION, account=ACCOUNT)
    assert decide([p], "apprunner:ListServices", "*") == "Allow"
