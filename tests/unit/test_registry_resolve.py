"""RegistryClient.resolve against canned registry answers (httpx.MockTransport)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import httpx
import pytest

from slipway.errors import ImageNotFound, RegistryAuthFailed, RegistryError, RegistryUnreachable
from slipway.sources.registry import MANIFEST_TYPES, ImageRef, RegistryClient

DIGEST = "sha256:" + "b" * 64
REF = ImageRef.parse("127.0.0.1:5000/team/hello:v1")
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> RegistryClient:
    return RegistryClient(transport=httpx.MockTransport(handler))


def test_head_reads_docker_content_digest() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    assert client(handler).resolve(REF) == DIGEST
    (request,) = seen
    assert request.method == "HEAD"
    assert str(request.url) == "http://127.0.0.1:5000/v2/team/hello/manifests/v1"
    for media_type in MANIFEST_TYPES:
        assert media_type in request.headers["Accept"]


def test_falls_back_to_sha256_of_body() -> None:
    body = b'{"schemaVersion": 2}'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"" if request.method == "HEAD" else body)

    assert client(handler).resolve(REF) == "sha256:" + hashlib.sha256(body).hexdigest()


def test_pinned_digest_is_checked() -> None:
    pinned = ImageRef.parse(f"127.0.0.1:5000/hello@{DIGEST}")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v2/hello/manifests/{DIGEST}"
        return httpx.Response(200)

    assert client(handler).resolve(pinned) == DIGEST
    with pytest.raises(ImageNotFound):
        client(lambda r: httpx.Response(404)).resolve(pinned)


def test_not_found_names_image_and_registry() -> None:
    with pytest.raises(ImageNotFound, match=r"127\.0\.0\.1:5000/team/hello:v1.*127\.0\.0\.1:5000"):
        client(lambda r: httpx.Response(404)).resolve(REF)


def bearer_registry(valid: tuple[str, str] | None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            auth = request.headers.get("Authorization")
            if valid and auth != "Basic " + base64.b64encode(":".join(valid).encode()).decode():
                return httpx.Response(401)
            assert request.url.params["service"] == "reg"
            assert request.url.params["scope"] == "repository:team/hello:pull"
            return httpx.Response(200, json={"token": "tok"})
        if request.headers.get("Authorization") == "Bearer tok":
            return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})
        challenge = 'Bearer realm="https://auth.example/token",service="reg"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    return handler


def test_bearer_token_anonymous() -> None:
    assert client(bearer_registry(None)).resolve(REF) == DIGEST


def test_bearer_token_with_credentials() -> None:
    registry = client(bearer_registry(("u", "p")))
    assert registry.resolve(REF, ("u", "p")) == DIGEST
    with pytest.raises(RegistryAuthFailed):
        registry.resolve(REF, ("u", "wrong"))


def test_basic_auth() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") == "Basic " + base64.b64encode(b"AWS:pw").decode():
            return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="ecr"'})

    assert client(handler).resolve(REF, ("AWS", "pw")) == DIGEST
    with pytest.raises(RegistryAuthFailed):
        client(handler).resolve(REF, ("AWS", "bad"))
    with pytest.raises(RegistryAuthFailed, match="requires credentials"):
        client(handler).resolve(REF)


def test_denied_is_auth_failure() -> None:
    with pytest.raises(RegistryAuthFailed):
        client(lambda r: httpx.Response(403)).resolve(REF)


def test_server_errors_are_passing() -> None:
    with pytest.raises(RegistryUnreachable):
        client(lambda r: httpx.Response(503)).resolve(REF)
    with pytest.raises(RegistryError) as info:
        client(lambda r: httpx.Response(400)).resolve(REF)
    assert info.value.terminal


def test_connection_refused_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RegistryUnreachable, match=r"127\.0\.0\.1:5000"):
        client(handler).resolve(REF)


def test_real_refused_port_is_unreachable() -> None:
    ref = ImageRef.parse("127.0.0.1:1/hello")
    with pytest.raises(RegistryUnreachable, match=r"127\.0\.0\.1:1"):
        RegistryClient(timeout=2).resolve(ref)


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({}, b"\x00\xffnot a manifest", "not an image manifest"),
        ({}, b'{"hello": "world"}', "not an image manifest"),
        ({"Docker-Content-Digest": "sha256:xyz"}, b"{}", "malformed digest"),
    ],
)
def test_garbage_answers_are_errors(headers: dict, body: bytes, why: str) -> None:
    """A garbage answer must never become a digest to deploy."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers=headers, content=b"" if request.method == "HEAD" else body
        )

    with pytest.raises(RegistryError, match=why):
        client(handler).resolve(ImageRef.parse("127.0.0.1:5000/app:v1"))
