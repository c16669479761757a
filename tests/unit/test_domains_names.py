"""Which custom domain names slipway takes, and what it says about the rest."""

from __future__ import annotations

import pytest

from slipway.domains.names import covers, parse_domain
from slipway.errors import InvalidRequest


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("example.com", "example.com"),
        ("Example.COM.", "example.com"),  # case and the root's trailing dot are dropped
        ("admin.login.example.com", "admin.login.example.com"),
        ("*.example.com", "*.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),  # bücher.example
        ("a-b.c0.io", "a-b.c0.io"),
        (("a" * 63 + ".") * 3 + "b" * 61, ("a" * 63 + ".") * 3 + "b" * 61),  # 253 chars
    ],
)
def test_good_names(raw: str, name: str) -> None:
    assert parse_domain(raw, "localhost") == name


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        (".", "empty"),
        ("example..com", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        ("com", "two labels"),
        ("*.com", "two labels"),
        ("-a.example.com", "hyphen"),
        ("a-.example.com", "hyphen"),
        ("a_b.example.com", "letters, digits and hyphens"),
        ("a" * 64 + ".com", "longer than 63"),
        (("a" * 63 + ".") * 4 + "com", "longer than 253"),
        ("a.*.example.com", "whole first label"),
        ("*example.com", "whole first label"),
        ("login*.example.com", "whole first label"),
        ("*.*.example.com", "whole first label"),
        ("**.example.com", "whole first label"),
        ("10.0.0.1", "IP address"),
        ("ab--cd.example.com", "reserved|positions 3-4"),
        ("xn--abc.example.com", "not valid punycode"),
        ("xn--a.example.com", "not valid punycode"),
        ("xn--pple-43d.com", "mixes CYRILLIC and LATIN"),  # Cyrillic а + Latin pple
        ("localhost", "slipway's own domain"),
        ("web.localhost", "slipway's own domain"),
        ("*.localhost", "slipway's own domain"),
        ("LOCALHOST.", "slipway's own domain"),
    ],
)
def test_bad_names(raw: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        parse_domain(raw, "localhost")


def test_own_domain_follows_the_setting() -> None:
    assert parse_domain("web.localhost", "apps.example.com") == "web.localhost"
    with pytest.raises(InvalidRequest, match="own domain"):
        parse_domain("x.apps.example.com", "apps.example.com")
    assert parse_domain("example.com", "apps.example.com") == "example.com"


def test_wildcard_covers_one_label() -> None:
    assert covers("*.example.com", "a.example.com")
    assert not covers("*.example.com", "example.com")
    assert not covers("*.example.com", "a.b.example.com")
    assert not covers("*.example.com", ".example.com")
    assert covers("example.com", "example.com")
    assert not covers("example.com", "a.example.com")
