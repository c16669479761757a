"""The guard on user-given URLs: refused at creation when they name or resolve to
loopback, link-local or private addresses, and again at connect time (DNS may change),
unless ``outbound_allow`` lists them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from slipway.config import load_settings
from slipway.errors import InvalidRequest, RegistryError
from slipway.observe.notify import Notifier
from slipway.outbound import OutboundPolicy, guarded_transport, link_local_reason, parse_allow
from slipway.sources.git_names import parse_repository_url
from slipway.sources.registry import ImageRef, RegistryClient
from slipway.store import Store
from slipway.vault import Vault
from testkit.receiver import Receiver, receiving

PUBLIC = "93.184.216.34"  # resolved to only; never connected to by these tests
PATTERN = {"source": ["aws.apprunner"]}


def names(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"{host}: name not known")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://localhost:2019/stop", "loopback"),
        ("http://127.0.0.1:2019/load", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://100.64.0.1/", "private"),
        ("http://0.0.0.0:8780/", "unspecified"),
        ("http://inside.test/", "private"),  # a name that resolves inside
    ],
)
def test_non_public_targets_are_refused_at_creation(url: str, why: str) -> None:
    policy = OutboundPolicy(
        resolver=names({"localhost": ["127.0.0.1"], "inside.test": ["10.0.0.5"]})
    )
    with pytest.raises(InvalidRequest, match=why) as caught:
        policy.check_url(url, "url")
    assert repr(url) in caught.value.message and "outbound_allow" in caught.value.message


def test_public_and_allowed_targets_pass() -> None:
    policy = OutboundPolicy(
        allow=("10.0.0.0/8", "127.0.0.1:9000", "localhost:9001"),
        resolver=names({"hooks.test": [PUBLIC], "localhost": ["127.0.0.1", "::1"]}),
    )
    for url in (
        "https://hooks.test/x",
        "http://10.1.2.3/",
        "http://127.0.0.1:9000/",
        "http://localhost:9001/",
        "http://not-yet-in-dns.test/",  # its connections are checked instead
    ):
        policy.check_url(url, "url")
    with pytest.raises(InvalidRequest, match="loopback"):
        policy.check_url("http://127.0.0.1:9001/", "url")  # another port
    with pytest.raises(InvalidRequest, match="loopback"):
        policy.check_url("http://localhost:9000/", "url")  # the name, not the address, is listed


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "host:port", "http://x/", "a/b", "x:0", "u@h"])
def test_bad_allow_entries_stop_the_agent(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="outbound_allow"):
        parse_allow(bad)
    settings = load_settings(Path("/nonexistent"), environ={"SLIPWAY_OUTBOUND_ALLOW": bad})
    with pytest.raises(InvalidRequest, match="outbound_allow"):
        settings.outbound.check()


def test_link_local_only_for_registries_and_git() -> None:
    assert "link-local" in (link_local_reason("169.254.169.254") or "")
    assert "link-local" in (link_local_reason("[fe80::1]") or "")
    for host in ("127.0.0.1", "10.0.0.1", "registry.example", "localhost"):
        assert link_local_reason(host) is None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def test_connect_time_check_follows_dns(receiver: Receiver) -> None:
    """A name checked public at creation that resolves to loopback later is refused
    when connecting; an allowed name connects to its checked address, Host unchanged."""
    table = {"rebind.test": [PUBLIC], "hooks.test": ["127.0.0.1"]}
    policy = OutboundPolicy(allow=("hooks.test",), resolver=names(table))
    policy.check_url(f"http://rebind.test:{receiver.port}/", "url")
    table["rebind.test"] = ["127.0.0.1"]
    with httpx.Client(transport=guarded_transport(policy), trust_env=False) as client:
        with pytest.raises(httpx.ConnectError, match="refused to connect: rebind.test"):
            client.post(f"http://rebind.test:{receiver.port}/", content=b"{}")
        answer = client.post(f"http://hooks.test:{receiver.port}/", content=b"{}")
    assert answer.status_code == 204
    assert receiver.hosts() == [f"hooks.test:{receiver.port}"]  # only the allowed one came


def test_notifier_refuses_targets_at_creation_and_config_targets_at_start(tmp_path: Path) -> None:
    vault = Vault(tmp_path / "vault.key")
    store = Store(tmp_path / "db", vault)
    notifier = Notifier(store, vault)
    for url in ("http://localhost:2019/stop", "http://169.254.169.254/", "http://10.1.2.3/"):
        with pytest.raises(InvalidRequest, match=f"url: '{url}' is refused"):
            notifier.add_target(url, PATTERN)
    assert notifier.list_targets() == []
    with pytest.raises(InvalidRequest, match=r"notify_targets\[0\].url"):
        Notifier(store, vault, config_targets=[{"url": "http://127.0.0.1/", "pattern": PATTERN}])


@pytest.mark.parametrize(
    "identifier", ["169.254.169.254/app:1", "169.254.169.254:5000/app:1", "[fe80::1]:5000/app"]
)
def test_images_from_a_link_local_registry_are_refused(identifier: str) -> None:
    with pytest.raises(InvalidRequest, match="link-local"):
        ImageRef.parse(identifier)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/repo.git", "ssh://git@[fe80::1]/r.git", "git@169.254.1.1:r"]
)
def test_repositories_on_link_local_hosts_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest, match="link-local"):
        parse_repository_url(url)


def test_operators_loopback_registry_and_git_still_work() -> None:
    assert ImageRef.parse("127.0.0.1:5000/app:1").registry == "127.0.0.1:5000"
    assert parse_repository_url("http://127.0.0.1:8000/app.git")
    assert parse_repository_url("http://10.0.0.7/app.git")


@pytest.mark.parametrize(
    ("status", "header"),
    [
        (401, {"WWW-Authenticate": 'Bearer realm="http://169.254.169.254/token",service="r"'}),
        (307, {"Location": "http://169.254.169.254/latest/meta-data/"}),
    ],
    ids=["token realm", "redirect"],
)
def test_a_registry_cannot_send_the_agent_to_a_link_local_address(
    status: int, header: dict[str, str]
) -> None:
    def registry(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "registry.test"  # the link-local one is never asked
        return httpx.Response(status, headers=header)

    client = RegistryClient(transport=httpx.MockTransport(registry))
    with pytest.raises(RegistryError, match="refused to send a registry request to http://169"):
        client.resolve(ImageRef.parse("registry.test/app:1"), ("user", "password"))
