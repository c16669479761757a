"""The agent on the internet through Caddy: webhooks on ``public_hooks_domain`` and the
API on ``api_domain`` over HTTPS (Caddy's internal CA, verified), the agent itself on
loopback only; bodies capped before any authentication; a webhook only a hint to look
at the source; a repository with a connection closed to the global secret.

The two names resolve to loopback in this process only (``resolve_to_loopback``): the
requests are real HTTPS with SNI and certificate checks, to the Caddy on this host."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import select
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from typer.testing import CliRunner

from slipway.cli import app
from slipway.routing.ingress import CLIENT_HEADER
from testkit.fakegithub import FakeGitHub
from testkit.gitserver import GitServer
from testkit.harness import (
    code_source,
    image_source,
    listeners,
    operations,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e

HOOKS = "hooks.slipway-ingress.test"
API = "api.slipway-ingress.test"
SECRET = "webhook-" + uuid.uuid4().hex
REGISTRY_TOKEN = "registry-" + uuid.uuid4().hex
TOKEN = "ghp_" + uuid.uuid4().hex
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = {p.name: p.read_text() for p in (EXAMPLES / "python-hello").iterdir() if p.is_file()}
HELLO["apprunner.yaml"] = HELLO["apprunner.yaml"].replace('"set in apprunner.yaml"', "one")
MB = 1024 * 1024


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_user(TOKEN, "octocat")
        yield fake


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    git = request.getfixturevalue("git")
    return {
        "tls_issuer": "internal",
        "https_port": request.getfixturevalue("caddy_server").https_port,
        "public_hooks_domain": HOOKS,
        "api_domain": API,
        "github_webhook_secret": SECRET,
        "registry_webhook_token": REGISTRY_TOKEN,
        "github_api_url": request.getfixturevalue("github").url,
        "github_hosts": f"127.0.0.1:{git.port}",
    }


@pytest.fixture(autouse=True)
def resolve_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOOKS and API resolve to 127.0.0.1 in this process, as public DNS would point
    them at the host."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # noqa: ANN001, ANN202 - socket's signature
        if isinstance(host, str) and host.lower() in (HOOKS, API):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def ca_root(agent, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caddy's internal root, as an operator would hand it to a client to trust."""
    path = tmp_path_factory.mktemp("ca") / "root.pem"
    path.write_text(
        httpx.get(f"{agent.caddy.admin_url}/pki/ca/local", timeout=5).json()["root_certificate"]
    )
    return path


def public(agent, name: str) -> str:
    return f"https://{name}:{agent.caddy.https_port}"


def https(agent, ca_root: Path, name: str, path: str, **kwargs) -> httpx.Response:
    """POST (or ``method=``) over HTTPS to ``name``, its certificate checked with Caddy's CA."""
    method = kwargs.pop("method", "POST")
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_root), timeout=30) as client:
        return client.request(method, public(agent, name) + path, **kwargs)


def wait_served(agent, ca_root: Path) -> None:
    """Caddy has loaded the ingress (the agent applies it on its first reconcile)."""

    def answers() -> bool:
        try:
            return https(agent, ca_root, HOOKS, "/", method="GET").status_code == 404
        except httpx.TransportError:
            return False

    wait_for(answers, 60, "Caddy to serve the hooks domain over HTTPS")


def push_event(git, name: str, sha: str, repo: str | None = None) -> dict:
    repo = repo or name
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "forced": False,
        "deleted": False,
        "repository": {
            "full_name": f"acme/{repo}",
            "clone_url": git.url(repo) + ".git",
            "html_url": git.url(repo),
        },
    }


def send_hook(agent, ca_root: Path, payload: dict, secret: str = SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    return https(
        agent,
        ca_root,
        HOOKS,
        "/hooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json",
        },
    )


def slipway(agent, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, list(args), env=agent.env, input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def audit_rows(agent) -> list[dict]:
    return json.loads(slipway(agent, "audit", "--json"))


def message(agent, name: str) -> str:
    return agent.get(name, "/env/MESSAGE").text.strip()


def test_hooks_domain_serves_the_hooks_only_and_the_agent_stays_on_loopback(agent, ca_root):
    wait_served(agent, ca_root)
    for path in ("/", "/healthz", "/metrics", "/slipway/v1/keys"):
        assert https(agent, ca_root, HOOKS, path, method="GET").status_code == 404, path
    # the hooks answer there (unsigned: refused, by the agent)
    assert https(agent, ca_root, HOOKS, "/hooks/registry", content=b"{}").status_code == 401
    # and the API's name does not hand out Caddy's ask
    ask = https(agent, ca_root, API, "/slipway/v1/domains/ask?domain=x.example", method="GET")
    assert ask.status_code == 404
    # the agent listens on loopback only
    assert [address for address, _ in listeners(agent.port)] == [f"0100007F:{agent.port:04X}"]


def test_webhook_through_the_hooks_domain_deploys_what_the_branch_is_at(agent, git, ca_root):
    wait_served(agent, ca_root)
    git.create_repo("hooked", HELLO)
    git.create_repo("elsewhere", HELLO)
    client = agent.client()
    arn = client.create_service(
        ServiceName="hooked",
        SourceConfiguration=code_source(git.url("hooked"), auto=True),
        Tags=[{"Key": "slipway:poll-interval", "Value": "1h"}],
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=300)

    sha = git.commit("hooked", {"apprunner.yaml": HELLO["apprunner.yaml"].replace("one", "two")})
    answer = send_hook(agent, ca_root, push_event(git, "hooked", sha))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"status": "accepted", "services": ["hooked"]}
    wait_for(lambda: message(agent, "hooked") == "two", 120, "the pushed commit to serve")
    wait_status(client, arn, "RUNNING")
    deployed = len(operations(client, arn))

    # Signed, but naming a commit that is not the head: the head is what counts.
    stray = git.commit("elsewhere", {"stray.txt": "not on hooked's main"})
    forged = send_hook(agent, ca_root, push_event(git, "hooked", stray))
    assert (forged.status_code, forged.json()["status"]) == (202, "ignored")
    # Signed, naming another repository with hooked's branch head as the commit.
    other = send_hook(agent, ca_root, push_event(git, "hooked", sha, repo="elsewhere"))
    assert (other.status_code, other.json()["status"]) == (202, "ignored")
    # The answers come after the look at the source: nothing was queued by either.
    assert len(operations(client, arn)) == deployed
    assert message(agent, "hooked") == "two"
    hooks = [r for r in audit_rows(agent) if r["Operation"] == "webhook:github"]
    ignored = [r for r in hooks if r["Outcome"] == "ignored"]
    assert [r["Params"]["sha"] for r in ignored[-2:]] == [stray, sha]
    assert ignored[-1]["Params"]["repository"] == [git.url("elsewhere")]
    assert all(r["SourceIp"] == "127.0.0.1" and r["RequestId"] for r in ignored)
    assert f"named {stray}" in slipway(agent, "logs", "hooked")


def test_global_secret_is_refused_for_a_repository_with_a_connection(agent, git, ca_root):
    wait_served(agent, ca_root)
    git.create_repo("acme/owned", HELLO)
    slipway(agent, "connections", "create", "github-acme")
    out = slipway(agent, "connections", "authorize", "github-acme", stdin=TOKEN + "\n")
    webhook_url, conn_secret = re.search(r"GitHub webhook: (\S+)  secret: (\S+)", out).groups()
    assert webhook_url == public(agent, HOOKS) + "/hooks/github"
    client = agent.client()
    connection = client.list_connections()["ConnectionSummaryList"][0]["ConnectionArn"]
    arn = client.create_service(
        ServiceName="owned",
        SourceConfiguration={
            **code_source(git.url("acme/owned"), auto=False),
            "AuthenticationConfiguration": {"ConnectionArn": connection},
        },
    )["Service"]["ServiceArn"]
    try:
        head = git.commit("acme/owned", {"README": "hi"})
        payload = push_event(git, "acme/owned", head)
        refused = send_hook(agent, ca_root, payload, secret=SECRET)
        assert refused.status_code == 401, refused.text
        assert send_hook(agent, ca_root, payload, secret=conn_secret).status_code == 202
        outcomes = [r["Outcome"] for r in audit_rows(agent) if r["Operation"] == "webhook:github"]
        assert outcomes[-2:] == ["unauthorized", "accepted"]
    finally:
        client.delete_service(ServiceArn=arn)


def test_boto3_over_the_api_domain(agent, ca_root, hello_image):
    wait_served(agent, ca_root)
    key_id, secret = agent.credentials()
    client = boto3.client(
        "apprunner",
        endpoint_url=public(agent, API),
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        verify=str(ca_root),
        config=Config(retries={"max_attempts": 1}),
    )
    created = client.create_service(
        ServiceName="api-hello", SourceConfiguration=image_source(hello_image)
    )
    request_id = created["ResponseMetadata"]["RequestId"]
    assert str(uuid.UUID(request_id)) == request_id
    arn = created["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=120)
    described = client.describe_service(ServiceArn=arn)["Service"]
    assert described["ServiceName"] == "api-hello"
    client.delete_service(ServiceArn=arn)
    wait_status(client, arn, "DELETED", timeout=60)
    rows = [r for r in audit_rows(agent) if r["RequestId"] == request_id]
    assert [(r["Operation"], r["Outcome"], r["SourceIp"]) for r in rows] == [
        ("CreateService", "OK", "127.0.0.1")
    ]
    # The region is the agent's.
    elsewhere = boto3.client(
        "apprunner",
        endpoint_url=public(agent, API),
        region_name="eu-west-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        verify=str(ca_root),
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(elsewhere.exceptions.ClientError, match="serves region 'us-east-1'"):
        elsewhere.list_services()


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def post_huge(port: int, path: str, *, chunked: bool, total: int = 100 * MB) -> bytes:
    """POST ``total`` bytes to the agent on loopback, declared or chunked, until it
    answers; the answer's head."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    chunk = b"[" * (64 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        sent = 0
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        assert sent < total, f"the agent read all of {path}"
        return sock.recv(4096)


PATHS = ("/", "/hooks/github", "/hooks/registry", "/slipway/v1/keys")


def test_a_100_mb_body_is_refused_everywhere_without_the_agent_growing(agent):
    # Small requests first: what every first request loads (the audit's copy of the
    # service model, code paths) is not what a large body costs.
    for path in PATHS:
        assert httpx.post(agent.endpoint + path, content=b"{}", timeout=10).status_code < 500
    pid = agent.proc.pid
    before = rss_kb(pid)
    for path in PATHS:
        for chunked in (False, True):
            answer = post_huge(agent.port, path, chunked=chunked)
            assert answer.startswith(b"HTTP/1.1 413"), (path, chunked, answer[:200])
            assert b"x-amzn-requestid" in answer.lower()
    grown = rss_kb(pid) - before
    assert grown < 10 * 1024, f"the agent grew by {grown} kB"
    assert httpx.get(f"{agent.endpoint}/healthz", timeout=5).status_code == 200


def test_failed_authentications_are_throttled_per_client_address(agent):
    """Straight to the agent on loopback, as Caddy sends: the client's address in
    CLIENT_HEADER. Past the burst of failures, that address gets ThrottlingException
    before any signature work; another address does not."""
    forged = {
        "X-Amz-Target": "AppRunner.ListServices",
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDNOBODY/20260101/us-east-1/"
        f"apprunner/aws4_request, SignedHeaders=host;x-amz-date, Signature={'0' * 64}",
    }

    def attempt(address: str) -> httpx.Response:
        return httpx.post(
            agent.endpoint + "/",
            content=b"{}",
            headers={**forged, CLIENT_HEADER: address},
            timeout=10,
        )

    codes = [attempt("203.0.113.7").json()["__type"] for _ in range(20)]
    assert set(codes) == {"UnrecognizedClientException"}
    throttled = attempt("203.0.113.7")
    assert (throttled.status_code, throttled.json()["__type"]) == (400, "ThrottlingException")
    assert throttled.headers["x-amzn-RequestId"]
    # a webhook with a bad signature from there is throttled too; another address is not
    hook = httpx.post(
        agent.endpoint + "/hooks/registry",
        content=b"{}",
        headers={CLIENT_HEADER: "203.0.113.7"},
        timeout=10,
    )
    assert hook.status_code == 429
    assert attempt("203.0.113.8").json()["__type"] == "UnrecognizedClientException"
    rows = [r for r in audit_rows(agent) if r["SourceIp"] == "203.0.113.7"]
    assert [r["Outcome"] for r in rows][-3:-1] == [
        "UnrecognizedClientException",
        "ThrottlingException",
    ]
