"""ImageRef.parse: the identifier forms App Runner users write, and the bad ones."""

from __future__ import annotations

import pytest

from slipway.errors import InvalidRequest
from slipway.sources.registry import ImageRef, RegistryClient

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("identifier", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/hello", "127.0.0.1:5000", "hello", "latest", None),
        ("127.0.0.1:5000/team/hello:v1", "127.0.0.1:5000", "team/hello", "v1", None),
        (f"127.0.0.1:5000/hello@{DIGEST}", "127.0.0.1:5000", "hello", None, DIGEST),
        (f"127.0.0.1:5000/hello:v2@{DIGEST}", "127.0.0.1:5000", "hello", "v2", DIGEST),
        ("localhost/hello", "localhost", "hello", "latest", None),
        ("localhost:5000/a/b/c:1.0-rc_1", "localhost:5000", "a/b/c", "1.0-rc_1", None),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/hello:latest",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "team/hello",
            "latest",
            None,
        ),
        (
            "public.ecr.aws/aws-containers/hello-app-runner:latest",
            "public.ecr.aws",
            "aws-containers/hello-app-runner",
            "latest",
            None,
        ),
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("bitnami/redis", "docker.io", "bitnami/redis", "latest", None),
        ("[::1]:5000/hello:x", "[::1]:5000", "hello", "x", None),
        ("reg.example.com/my_app__x/web-1", "reg.example.com", "my_app__x/web-1", "latest", None),
    ],
)
def test_parse(
    identifier: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef.parse(identifier)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        " hello",
        "hello world",
        "127.0.0.1:5000/Hello",
        "127.0.0.1:5000/",
        "127.0.0.1:5000/hello:",
        "127.0.0.1:5000/hello:bad/tag",
        "127.0.0.1:5000/hello:-dash",
        "127.0.0.1:5000/hello@sha256:short",
        "127.0.0.1:5000/hello@latest",
        "hello//world",
        "-hello",
        "hello-",
        "bad_host:5000:1/hello",
        "127.0.0.1:5000/" + "a" * 300,
    ],
)
def test_parse_rejects(identifier: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        ImageRef.parse(identifier)
    assert repr(identifier) in str(info.value)


def test_str_and_with_digest() -> None:
    ref = ImageRef.parse("127.0.0.1:5000/team/hello:v1")
    assert str(ref) == "127.0.0.1:5000/team/hello:v1"
    assert ref.with_digest(DIGEST) == f"127.0.0.1:5000/team/hello@{DIGEST}"
    pinned = ImageRef.parse(f"127.0.0.1:5000/hello@{DIGEST}")
    assert str(pinned) == f"127.0.0.1:5000/hello@{DIGEST}"
    assert pinned.reference == DIGEST
    assert ImageRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("registry", "insecure", "url"),
    [
        ("127.0.0.1:5000", (), "http://127.0.0.1:5000"),
        ("127.1.2.3:5000", (), "http://127.1.2.3:5000"),
        ("localhost:5000", (), "http://localhost:5000"),
        ("[::1]:5000", (), "http://[::1]:5000"),
        ("reg.lan:5000", ("reg.lan:5000",), "http://reg.lan:5000"),
        ("reg.lan:5000", (), "https://reg.lan:5000"),
        ("public.ecr.aws", (), "https://public.ecr.aws"),
        ("docker.io", (), "https://registry-1.docker.io"),
    ],
)
def test_scheme(registry: str, insecure: tuple[str, ...], url: str) -> None:
    assert RegistryClient(insecure_registries=insecure).base_url(registry) == url
