"""Quotas with the current guide's defaults (30 services, 5 revisions per auto scaling
configuration name), DefaultConfiguration managed like any other name, and creates that
refuse bad input storing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_services_worker import Env

from slipway.config import load_settings
from slipway.connections import Connections
from slipway.errors import InvalidRequest, QuotaExceeded
from slipway.quotas import Quotas
from slipway.sources.github import GitHub


def test_defaults_are_the_current_guides() -> None:
    settings = load_settings(environ={})
    assert settings.quotas == Quotas() == Quotas(30, 10, 10, 5)
    Quotas().check()


@pytest.mark.parametrize(
    "setting",
    ["service_quota", "connection_quota", "auto_scaling_name_quota", "auto_scaling_revision_quota"],
)
def test_a_nonsense_quota_refuses_to_start_naming_the_setting(setting: str) -> None:
    quotas = load_settings(environ={f"SLIPWAY_{setting.upper()}": "0"}).quotas
    with pytest.raises(InvalidRequest, match=setting):
        quotas.check()


def test_five_revisions_per_name_then_delete_one_to_make_room(tmp_path: Path) -> None:
    env = Env(tmp_path)
    rows = [
        env.services.create_auto_scaling({"AutoScalingConfigurationName": "busy"}) for _ in range(5)
    ]
    assert [r["revision"] for r in rows] == [1, 2, 3, 4, 5]
    with pytest.raises(QuotaExceeded, match="5 active revisions.*auto_scaling_revision_quota"):
        env.services.create_auto_scaling({"AutoScalingConfigurationName": "busy"})
    assert len(env.services.list_auto_scaling("busy", False)) == 5
    env.services.delete_auto_scaling(rows[0]["arn"], False)
    again = env.services.create_auto_scaling({"AutoScalingConfigurationName": "busy"})
    assert again["revision"] == 6


def test_default_configuration_takes_revisions_and_they_can_be_deleted(tmp_path: Path) -> None:
    env = Env(tmp_path)
    original = env.services.list_auto_scaling("DefaultConfiguration", False)[0]
    second = env.services.create_auto_scaling(
        {"AutoScalingConfigurationName": "DefaultConfiguration", "MaxSize": 3}
    )
    assert (second["name"], second["revision"], second["max_size"]) == (
        "DefaultConfiguration",
        2,
        3,
    )
    assert second["is_default"] == 0  # a revision is not the default by being made
    env.services.delete_auto_scaling(second["arn"], False)
    # the one App Runner provides is the default: refused until another one is
    with pytest.raises(InvalidRequest, match="is the default"):
        env.services.delete_auto_scaling(original["arn"], False)
    other = env.services.create_auto_scaling({"AutoScalingConfigurationName": "other"})
    env.services.update_default_auto_scaling(other["arn"])
    deleted = env.services.delete_auto_scaling(original["arn"], False)
    assert deleted["status"] == "INACTIVE"
    env.services.ensure_default_auto_scaling()  # the next start does not bring it back
    assert env.services.list_auto_scaling("DefaultConfiguration", False) == []
    fresh = env.services.create_auto_scaling(
        {"AutoScalingConfigurationName": "DefaultConfiguration"}
    )
    assert fresh["revision"] == 3 and env.create("web").spec.auto_scaling_arn == other["arn"]


def test_the_service_quota_defaults_to_30(tmp_path: Path) -> None:
    env = Env(tmp_path)
    for n in range(30):
        env.create(f"s{n}")
    with pytest.raises(QuotaExceeded, match=r"\(30\)"):
        env.create("one-more")


def test_create_connection_with_bad_tags_creates_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path)
    connections = Connections(env.store, env.settings, env.vault, GitHub("http://127.0.0.1:9"))
    bad = [{"Key": "slipway:poll-interval", "Value": "banana"}]
    with pytest.raises(InvalidRequest, match="Tags\\[0\\]"):
        connections.create("gh", "GITHUB", bad)
    too_many = [{"Key": f"k{n}", "Value": "v"} for n in range(51)]
    with pytest.raises(InvalidRequest, match="at most 50 tags"):
        connections.create("gh", "GITHUB", too_many)
    assert connections.list() == []
    row = connections.create("gh", "GITHUB", [{"Key": "team", "Value": "web"}])
    assert env.store.get_tags(row["arn"]) == {"team": "web"}
