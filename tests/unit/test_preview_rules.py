"""Preview environments' rules (policy tag, refusals, TTL and maximum) and the pull
request calls against the fake GitHub API."""

from __future__ import annotations

import pytest

from slipway.errors import InvalidRequest
from slipway.preview_rules import (
    LivePreview,
    PreviewPolicy,
    Pull,
    comment,
    marker,
    parse_policy,
    refusal,
    to_remove,
)
from slipway.sources.github_pulls import PullRequests
from testkit.fakepulls import FakeGitHubPulls

DAY = 86400.0
SHA = "a" * 40


def pull(number: int = 7, *, head_repo: str | None = "acme/app", clone: str | None = "x") -> Pull:
    return Pull(number, True, False, SHA, "feature", head_repo, clone, "acme/app")


def test_policy_defaults_and_parts():
    assert parse_policy("", ttl=3 * DAY, max_previews=5) == PreviewPolicy(3 * DAY, 5)
    policy = parse_policy("ttl=12h, max=2,forks=yes,poll=no", ttl=DAY, max_previews=5)
    assert policy == PreviewPolicy(12 * 3600, 2, forks=True, poll=False)
    assert parse_policy(policy.to_tag(), ttl=DAY, max_previews=5) == policy


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("ttl=soon", "ttl='soon'"),
        ("max=0", "max='0'"),
        ("forks=maybe", "forks='maybe'"),
        ("colour=blue", "'colour=blue'"),
    ],
)
def test_policy_refuses_what_it_cannot_read(text, named):
    with pytest.raises(InvalidRequest, match=named):
        parse_policy(text, ttl=DAY, max_previews=5)


def test_forks_are_refused_unless_allowed_and_long_names_always():
    policy = PreviewPolicy(DAY, 5)
    assert refusal(pull(), policy, "web") is None
    why = refusal(pull(head_repo="mallory/app"), policy, "web")
    assert why is not None and "fork" in why and "--allow-forks" in why
    allowed = PreviewPolicy(DAY, 5, forks=True)
    assert refusal(pull(head_repo="mallory/app"), allowed, "web") is None
    assert "deleted" in refusal(pull(head_repo=None, clone=None), allowed, "web")
    assert "40 characters" in refusal(pull(), policy, "w" * 36)


def test_ttl_and_maximum_remove_oldest_first_but_not_while_busy():
    def live(number: int, created: float, changed: float, busy: bool = False) -> LivePreview:
        return LivePreview(f"web-pr-{number}", number, created, changed, busy)

    now = 10 * DAY
    previews = [
        live(1, 1 * DAY, 2 * DAY),  # stale
        live(2, 1 * DAY, 2 * DAY, busy=True),  # stale, but deploying: judged later
        live(3, 3 * DAY, 9.5 * DAY),
        live(4, 4 * DAY, 9.5 * DAY),
        live(5, 5 * DAY, 9.5 * DAY),
    ]
    gone = to_remove(previews, PreviewPolicy(DAY, 2), now)
    assert [(p.number, "TTL" in why) for p, why in gone] == [(1, True), (2, False), (3, False)]
    assert "max" in gone[1][1]
    assert to_remove(previews[2:], PreviewPolicy(DAY, 5), now) == []


def test_pull_requests_and_one_comment_edited_in_place():
    with FakeGitHubPulls() as fake:
        fake.add_user("ghp_t", "octocat")
        fake.add_repo("acme/app")
        fake.open_pull("acme/app", 7, head_ref="feature", head_sha=SHA)
        fake.open_pull("acme/app", 8, head_ref="main", head_sha=SHA, head_repo="mallory/app")
        gh = PullRequests(fake.url, seconds_between_writes=0, seconds_between_requests=0)
        url = "https://github.com/acme/app"
        seven = gh.pull("ghp_t", url, 7)
        assert (seven.open, seven.head_ref, seven.fork) == (True, "feature", False)
        assert gh.pull("ghp_t", url, 99) is None
        assert [p.number for p in gh.open_pulls("ghp_t", url, 10)] == [8, 7]
        assert gh.open_pulls("ghp_t", url, 10)[0].fork
        mark = marker("web")
        gh.upsert_comment("ghp_t", url, 7, mark, comment(mark, "web-pr-7", "building", None, ""))
        gh.upsert_comment("ghp_t", url, 7, mark, comment(mark, "web-pr-7", "ready", "http://u", ""))
        gh.upsert_comment("ghp_t", url, 7, mark, comment(mark, "web-pr-7", "ready", "http://u", ""))
        (only,) = fake.comments_on("acme/app", 7)
        assert only["edits"] == 1 and "ready" in only["body"] and "http://u" in only["body"]
        fake.close_pull("acme/app", 7, merged=True)
        closed = gh.pull("ghp_t", url, 7)
        assert (closed.open, closed.merged) == (False, True)
