"""GitHub through PyGithub against FakeGitHub: a loopback REST API shaped like GitHub's."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest
import requests

from slipway.sources.github import GitHub, github_repo_name
from slipway.sources.github_app import AppCredentials, TokenCache
from slipway.sources.github_errors import GitHubAuthFailed, GitHubError, GitHubUnavailable
from testkit.clock import Clock
from testkit.fakegithub import FakeGitHub, generate_private_key

TOKEN = "ghp_PLANTEDtoken0123456789abcdefghijklmnop"
REPO_URL = "https://github.com/octo/app"
SHA = "0123456789abcdef0123456789abcdef01234567"
APP_ID = 4242


@pytest.fixture(scope="module")
def app_key() -> str:
    return generate_private_key()


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeGitHub]:
    with FakeGitHub(clock=clock) as server:
        server.add_user(TOKEN, "octocat")
        server.add_repo("octo/app")
        yield server


@pytest.fixture
def gh(fake: FakeGitHub) -> GitHub:
    return GitHub(fake.url, timeout=5, seconds_between_requests=0, seconds_between_writes=0)


def full_text(exc: BaseException) -> str:
    """Everything a log line with this exception's traceback would show, causes included."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


# -- tokens ---------------------------------------------------------------------


def test_verify_token_returns_login(gh: GitHub, fake: FakeGitHub) -> None:
    assert gh.verify_token(TOKEN) == "octocat"
    assert fake.calls() == [("GET", "/user")]
    assert fake.requests[0].auth == "token"


def test_bad_token_is_rejected_without_showing_it(gh: GitHub, fake: FakeGitHub) -> None:
    bad = "ghp_WRONGtoken0123456789abcdefghijklmnopq"
    with pytest.raises(GitHubAuthFailed) as err:
        gh.verify_token(bad)
    assert str(err.value).startswith("token rejected by GitHub: 401 Bad credentials")
    assert err.value.terminal
    assert bad not in full_text(err.value)


def test_revoked_token_is_rejected(gh: GitHub, fake: FakeGitHub) -> None:
    fake.revoke(TOKEN)
    with pytest.raises(GitHubAuthFailed, match="401"):
        gh.verify_token(TOKEN)


def test_empty_token_is_refused_before_any_request(gh: GitHub, fake: FakeGitHub) -> None:
    with pytest.raises(GitHubAuthFailed, match="no GitHub token"):
        gh.verify_token("  ")
    assert fake.requests == []


def test_fake_accepts_bearer_tokens_too(fake: FakeGitHub) -> None:
    for scheme in ("token", "Bearer"):
        r = requests.get(f"{fake.url}/user", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert r.status_code == 200 and r.json()["login"] == "octocat"
    r = requests.get(f"{fake.url}/user")
    assert r.status_code == 401 and r.json()["message"] == "Requires authentication"


# -- repositories ----------------------------------------------------------------


def test_repo_accessible(gh: GitHub, fake: FakeGitHub) -> None:
    fake.add_repo("octo/secret", private=True, readers={"ghp_other"})
    assert gh.repo_accessible(TOKEN, REPO_URL)
    assert not gh.repo_accessible(TOKEN, "https://github.com/octo/secret")
    assert not gh.repo_accessible(TOKEN, "git@github.com:octo/missing.git")
    with pytest.raises(GitHubAuthFailed):
        gh.repo_accessible("ghp_nobody", REPO_URL)


def test_non_github_url_is_refused_without_requests(gh: GitHub, fake: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match="not a repository on github.com") as err:
        gh.deployment_started(TOKEN, "https://user:pw@gitlab.com/octo/app", SHA, "web", "x")
    assert "pw" not in str(err.value)
    with pytest.raises(GitHubError):
        gh.repo_accessible(TOKEN, "file:///srv/git/app")
    assert fake.requests == []


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/octo/app", "octo/app"),
        ("https://github.com/octo/app.git", "octo/app"),
        ("https://github.com/octo/app/", "octo/app"),
        ("http://GitHub.com/Octo/My.App", "Octo/My.App"),
        ("git@github.com:octo/app.git", "octo/app"),
        ("git@github.com:octo/app", "octo/app"),
        ("ssh://git@github.com/octo/app.git", "octo/app"),
        ("ssh://git@github.com:22/octo/app", "octo/app"),
        ("https://gitlab.com/octo/app", None),
        ("https://github.com/octo", None),
        ("https://github.com/octo/app/tree/main", None),
        ("https://github.com/octo/..", None),
        ("https://github.com.evil.example/octo/app", None),
        ("file:///srv/octo/app", None),
        ("git@gitlab.com:octo/app.git", None),
        ("not a url", None),
    ],
)
def test_github_repo_name(url: str, name: str | None) -> None:
    assert github_repo_name(url) == name


def test_github_repo_name_with_other_hosts() -> None:
    hosts = ("ghe.example.com", "127.0.0.1:8080")
    assert github_repo_name("https://ghe.example.com/team/svc", hosts) == "team/svc"
    assert github_repo_name("http://127.0.0.1:8080/team/svc.git", hosts) == "team/svc"
    assert github_repo_name("http://127.0.0.1:9090/team/svc", hosts) is None
    assert github_repo_name("https://github.com/team/svc", hosts) is None


# -- GitHub Apps -------------------------------------------------------------------


def test_verify_app_finds_its_single_installation(
    gh: GitHub, fake: FakeGitHub, app_key: str
) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo"})
    app = gh.verify_app(AppCredentials(APP_ID, app_key))
    assert app == AppCredentials(APP_ID, app_key, installation_id=77)
    assert fake.calls() == [("GET", "/app"), ("GET", "/app/installations")]
    assert {r.auth for r in fake.requests} == {"jwt"}


def test_verify_app_checks_a_given_installation(gh: GitHub, fake: FakeGitHub, app_key: str) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo", 78: "other"})
    given = AppCredentials(APP_ID, app_key, installation_id=78)
    assert gh.verify_app(given) is given
    assert fake.calls()[-1] == ("GET", "/app/installations/78")
    with pytest.raises(GitHubError, match="404") as err:
        gh.verify_app(AppCredentials(APP_ID, app_key, installation_id=99))
    assert err.value.terminal


def test_verify_app_with_several_installations_names_them(
    gh: GitHub, fake: FakeGitHub, app_key: str
) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo", 78: "other"})
    with pytest.raises(GitHubError, match=r"2 installations: 77 \(octo\), 78 \(other\)"):
        gh.verify_app(AppCredentials(APP_ID, app_key))


def test_verify_app_with_no_installation(gh: GitHub, fake: FakeGitHub, app_key: str) -> None:
    fake.add_app(APP_ID, app_key)
    with pytest.raises(GitHubError, match="not installed on any account"):
        gh.verify_app(AppCredentials(APP_ID, app_key))


def test_wrong_key_or_app_id_is_rejected(gh: GitHub, fake: FakeGitHub, app_key: str) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo"})
    other_key = generate_private_key()
    with pytest.raises(GitHubAuthFailed) as err:
        gh.verify_app(AppCredentials(APP_ID, other_key))
    assert str(err.value).startswith(f"GitHub App {APP_ID} rejected by GitHub: 401")
    assert other_key.splitlines()[1] not in full_text(err.value)
    with pytest.raises(GitHubAuthFailed, match="401"):
        gh.verify_app(AppCredentials(APP_ID + 1, app_key))


def test_unusable_private_keys_fail_before_any_request(gh: GitHub, fake: FakeGitHub) -> None:
    with pytest.raises(GitHubAuthFailed, match="not a PEM private key"):
        gh.verify_app(AppCredentials(APP_ID, "hunter2"))
    broken = "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n"
    with pytest.raises(GitHubAuthFailed, match="cannot sign a JWT") as err:
        gh.verify_app(AppCredentials(APP_ID, broken))
    assert "bm90IGEga2V5" not in full_text(err.value)
    with pytest.raises(GitHubError, match="not a positive number"):
        gh.verify_app(AppCredentials(0, broken))
    assert fake.requests == []


def test_app_credentials_repr_hides_the_key(app_key: str) -> None:
    shown = repr(AppCredentials(APP_ID, app_key, 7))
    assert "PRIVATE" not in shown and str(APP_ID) in shown


def test_installation_token(gh: GitHub, fake: FakeGitHub, app_key: str, clock: Clock) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo"})
    token, expires_at = gh.installation_token(AppCredentials(APP_ID, app_key, 77))
    assert token in fake.installation_tokens()
    assert expires_at == int(clock.now + fake.token_lifetime)
    assert fake.calls() == [("POST", "/app/installations/77/access_tokens")]
    # The token works where a connection's token would: deployments on the repo.
    deployment_id = gh.deployment_started(token, REPO_URL, SHA, "web", "deploying")
    assert fake.deployments[deployment_id]["creator"]["login"] == f"app-{APP_ID}[bot]"


def test_installation_token_finds_the_installation(
    gh: GitHub, fake: FakeGitHub, app_key: str
) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo"})
    gh.installation_token(AppCredentials(APP_ID, app_key))
    assert fake.calls() == [
        ("GET", "/app/installations"),
        ("POST", "/app/installations/77/access_tokens"),
    ]


def test_token_cache_refreshes_before_expiry(
    gh: GitHub, fake: FakeGitHub, app_key: str, clock: Clock
) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo", 78: "other"})
    app = AppCredentials(APP_ID, app_key, 77)
    cache = TokenCache(gh, refresh_margin=300, clock=clock)
    first = cache.token("conn-a", app)
    expires_at = clock.now + fake.token_lifetime
    clock.now = expires_at - 301
    assert cache.token("conn-a", app) == first
    assert len(fake.requests) == 1
    clock.now = expires_at - 299
    second = cache.token("conn-a", app)
    assert second != first and len(fake.requests) == 2
    # Another key, or new credentials under the same key, get their own token.
    assert cache.token("conn-b", app) not in (first, second)
    moved = cache.token("conn-a", AppCredentials(APP_ID, app_key, 78))
    assert moved != second and len(fake.requests) == 4
    cache.forget("conn-a")
    cache.token("conn-a", AppCredentials(APP_ID, app_key, 78))
    assert len(fake.requests) == 5


def test_expired_installation_token_is_refused(
    gh: GitHub, fake: FakeGitHub, app_key: str, clock: Clock
) -> None:
    fake.add_app(APP_ID, app_key, installations={77: "octo"})
    token, expires_at = gh.installation_token(AppCredentials(APP_ID, app_key, 77))
    clock.now = expires_at + 1
    with pytest.raises(GitHubAuthFailed):
        gh.deployment_started(token, REPO_URL, SHA, "web", "deploying")


# -- deployment feedback ------------------------------------------------------------


def test_deployment_success_flow(gh: GitHub, fake: FakeGitHub) -> None:
    deployment_id = gh.deployment_started(TOKEN, REPO_URL, SHA, "web", "deploying abc")
    gh.deployment_finished(
        TOKEN, REPO_URL, SHA, deployment_id, "web", True, "http://web.localhost", "live"
    )
    base = "/repos/octo/app"
    assert fake.calls() == [
        ("POST", f"{base}/deployments"),
        ("POST", f"{base}/deployments/{deployment_id}/statuses"),
        ("POST", f"{base}/statuses/{SHA}"),
        ("POST", f"{base}/deployments/{deployment_id}/statuses"),
        ("POST", f"{base}/statuses/{SHA}"),
    ]
    bodies = [r.body for r in fake.requests]
    assert bodies[0] == {
        "ref": SHA,
        "environment": "web",
        "auto_merge": False,
        "required_contexts": [],
        "description": "deploying abc",
    }
    assert bodies[1] == {"state": "in_progress", "description": "deploying abc"}
    assert bodies[2] == {
        "state": "pending",
        "description": "deploying abc",
        "context": "slipway/web",
    }
    assert bodies[3] == {
        "state": "success",
        "description": "live",
        "environment_url": "http://web.localhost",
    }
    assert bodies[4] == {
        "state": "success",
        "description": "live",
        "context": "slipway/web",
        "target_url": "http://web.localhost",
    }
    states = [s["state"] for s in fake.deployment_statuses[deployment_id]]
    assert states == ["in_progress", "success"]


def test_deployment_failure_flow(gh: GitHub, fake: FakeGitHub) -> None:
    deployment_id = gh.deployment_started(TOKEN, REPO_URL, SHA, "web", "deploying")
    fake.requests.clear()
    gh.deployment_finished(TOKEN, REPO_URL, SHA, deployment_id, "web", False, None, "unhealthy")
    assert [r.body for r in fake.requests] == [
        {"state": "failure", "description": "unhealthy"},
        {"state": "failure", "description": "unhealthy", "context": "slipway/web"},
    ]


def test_finish_without_a_deployment_sets_the_commit_status_only(
    gh: GitHub, fake: FakeGitHub
) -> None:
    gh.deployment_finished(TOKEN, REPO_URL, SHA, None, "web", True, None, "live")
    assert fake.calls() == [("POST", f"/repos/octo/app/statuses/{SHA}")]


def test_long_descriptions_are_cut_to_what_github_takes(gh: GitHub, fake: FakeGitHub) -> None:
    gh.deployment_started(TOKEN, REPO_URL, SHA, "web", "x" * 500)
    assert all(len(r.body["description"]) == 140 for r in fake.requests)


def test_a_failed_step_after_creation_still_gives_the_deployment_id(
    gh: GitHub, fake: FakeGitHub
) -> None:
    fake.fail_next(422, "Validation Failed", after=1)  # the in_progress status
    with pytest.raises(GitHubError, match="422") as err:
        gh.deployment_started(TOKEN, REPO_URL, SHA, "web", "deploying")
    assert err.value.terminal
    assert err.value.deployment_id in fake.deployments
    # A refused status does not stop the next step.
    assert fake.calls()[-1] == ("POST", f"/repos/octo/app/statuses/{SHA}")
    assert fake.commit_statuses[("octo/app", SHA)][0]["state"] == "pending"


def test_finish_sets_the_commit_status_even_if_the_deployment_status_is_refused(
    gh: GitHub, fake: FakeGitHub
) -> None:
    with pytest.raises(GitHubError, match="404"):
        gh.deployment_finished(TOKEN, REPO_URL, SHA, 999_999, "web", True, None, "live")
    assert fake.commit_statuses[("octo/app", SHA)][0]["state"] == "success"


def test_read_only_token_may_not_deploy(gh: GitHub, fake: FakeGitHub) -> None:
    fake.add_user("ghp_readonly", "viewer", can_write=False)
    with pytest.raises(GitHubError, match="lacks permission: 403") as err:
        gh.deployment_started("ghp_readonly", REPO_URL, SHA, "web", "deploying")
    assert err.value.terminal and err.value.deployment_id is None


# -- passing failures ------------------------------------------------------------------


def test_github_down_is_passing(gh: GitHub, fake: FakeGitHub, app_key: str) -> None:
    fake.down()
    with pytest.raises(GitHubUnavailable, match="unreachable") as err:
        gh.verify_token(TOKEN)
    assert not err.value.terminal
    with pytest.raises(GitHubUnavailable):
        gh.deployment_started(TOKEN, REPO_URL, SHA, "web", "deploying")
    with pytest.raises(GitHubUnavailable):
        gh.deployment_finished(TOKEN, REPO_URL, SHA, 1, "web", True, None, "live")
    with pytest.raises(GitHubUnavailable):
        gh.installation_token(AppCredentials(APP_ID, app_key, 77))
    assert TOKEN not in full_text(err.value)


@pytest.mark.parametrize(
    ("status", "message", "terminal"),
    [
        (500, None, False),
        (502, None, False),
        (403, "API rate limit exceeded for user ID 1.", False),
        (403, "You have exceeded a secondary rate limit", False),
        (403, "Resource not accessible by integration", True),
        (422, "Validation Failed", True),
        (409, "Conflict: Commit status checks failed for main.", True),
    ],
)
def test_http_failures(
    gh: GitHub, fake: FakeGitHub, status: int, message: str | None, terminal: bool
) -> None:
    fake.fail_next(status, message)
    with pytest.raises(GitHubError, match=str(status)) as err:
        gh.deployment_started(TOKEN, REPO_URL, SHA, "web", "deploying")
    assert err.value.terminal is terminal
    assert TOKEN not in full_text(err.value)


def test_passing_failure_stops_the_remaining_steps(gh: GitHub, fake: FakeGitHub) -> None:
    fake.fail_next(503)
    with pytest.raises(GitHubUnavailable):
        gh.deployment_finished(TOKEN, REPO_URL, SHA, 5, "web", True, None, "live")
    assert len(fake.requests) == 1


def test_github_echoing_the_token_is_masked(gh: GitHub, fake: FakeGitHub) -> None:
    fake.fail_next(422, f"token {TOKEN} is odd")
    with pytest.raises(GitHubError) as err:
        gh.deployment_started(TOKEN, REPO_URL, SHA, "web", "deploying")
    assert "token *** is odd" in str(err.value)


# -- no token in any log record ----------------------------------------------------------


def test_no_token_in_any_log_record(
    gh: GitHub, fake: FakeGitHub, app_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_app(APP_ID, app_key, installations={77: "octo"})
    gh.verify_token(TOKEN)
    app = gh.verify_app(AppCredentials(APP_ID, app_key))
    installation_token = TokenCache(gh).token("conn", app)
    for token in (TOKEN, installation_token):
        deployment_id = gh.deployment_started(token, REPO_URL, SHA, "web", "deploying")
        gh.deployment_finished(token, REPO_URL, SHA, deployment_id, "web", True, None, "live")
    with pytest.raises(GitHubAuthFailed):
        gh.verify_token(TOKEN + "x")
    secrets = (TOKEN, installation_token, app_key.splitlines()[1])
    assert any(r.name.startswith("slipway") for r in caplog.records)
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert not any(s in text for s in secrets), record.name


def test_pygithub_debug_log_has_installation_tokens_masked(
    gh: GitHub, fake: FakeGitHub, app_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PyGithub's DEBUG log prints response bodies; the access token body is masked."""
    fake.add_app(APP_ID, app_key, installations={77: "octo"})
    pygithub = logging.getLogger("github.Requester")
    assert pygithub.level == logging.INFO  # pinned on import: root DEBUG does not reach it
    caplog.set_level(logging.DEBUG, logger="github.Requester")
    token, _ = gh.installation_token(AppCredentials(APP_ID, app_key, 77))
    bodies = [r.getMessage() for r in caplog.records if r.name == "github.Requester"]
    assert bodies and '"token": "***"' in bodies[-1]
    assert not any(token in b for b in bodies)
