"""What a custom domain name may be: pure checks, so every rule is testable with strings.

A name is kept lower-case and without its trailing dot. Internationalised names come
in their ASCII (``xn--``) form, since the API's pattern admits ASCII only; each such
label must be valid IDNA punycode, and one label may not mix Latin, Greek and Cyrillic
letters (``xn--pple-43d`` is a Cyrillic "а" followed by Latin "pple": a lookalike of
"apple"). A wildcard is ``*`` as the whole first label, as App Runner allows it.

App Runner also refuses wildcards below a subdomain (``*.login.example.com``); telling a
registrable domain from a subdomain needs the public suffix list (``example.co.uk``),
which slipway does not carry, so any ``*.<name>`` with two or more labels is accepted.
"""

from __future__ import annotations

import re
import unicodedata

import idna

from ..errors import InvalidRequest

MAX_NAME = 253
MAX_LABEL = 63
WILDCARD = "*."
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_CONFUSABLE_SCRIPTS = {"LATIN", "GREEK", "CYRILLIC"}


def is_wildcard(name: str) -> bool:
    return name.startswith(WILDCARD)


def www_name(name: str) -> str:
    return f"www.{name}"


def covers(pattern: str, host: str) -> bool:
    """Whether ``pattern`` (a name or ``*.parent``) matches ``host``: a wildcard matches
    exactly one more label, like Caddy's host matcher and TLS certificates."""
    if not is_wildcard(pattern):
        return pattern == host
    first, _, rest = host.partition(".")
    return bool(first) and rest == pattern[len(WILDCARD) :]


def parse_domain(raw: str, base_domain: str) -> str:
    """The normalised domain, or InvalidRequest saying what is wrong with it."""
    name = raw[:-1] if raw.endswith(".") else raw  # a fully qualified name's root dot
    name = name.lower()
    if not name:
        raise InvalidRequest(f"DomainName {raw!r} is empty")
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"DomainName {raw!r} is longer than {MAX_NAME} characters")
    labels = name.split(".")
    if is_wildcard(name):
        labels = labels[1:]
    if "*" in ".".join(labels):
        raise InvalidRequest(
            f"DomainName {raw!r}: a wildcard must be the whole first label, as in *.example.com"
        )
    base = base_domain.lower().rstrip(".")
    parent = ".".join(labels)
    if parent == base or parent.endswith(f".{base}") or name == base:
        raise InvalidRequest(
            f"DomainName {raw!r} is slipway's own domain {base}: its services are "
            f"already served there"
        )
    if len(labels) < 2:
        raise InvalidRequest(
            f"DomainName {raw!r} needs at least two labels (a name like example.com)"
        )
    for label in labels:
        _check_label(raw, label)
    if labels[-1].isdigit():
        raise InvalidRequest(f"DomainName {raw!r} is an IP address, not a domain name")
    return name


def _check_label(raw: str, label: str) -> None:
    if not label:
        raise InvalidRequest(f"DomainName {raw!r} has an empty label (two dots in a row)")
    if len(label) > MAX_LABEL:
        raise InvalidRequest(
            f"DomainName {raw!r}: label {label[:20]}... is longer than {MAX_LABEL} characters"
        )
    if label.startswith("-") or label.endswith("-"):
        raise InvalidRequest(f"DomainName {raw!r}: label {label!r} starts or ends with a hyphen")
    if not _LABEL.fullmatch(label):
        raise InvalidRequest(
            f"DomainName {raw!r}: label {label!r} may hold only letters, digits and hyphens"
        )
    if label[2:4] == "--":
        _check_reserved(raw, label)


def _check_reserved(raw: str, label: str) -> None:
    """Labels with "--" in positions 3 and 4 are reserved for encodings; only valid
    punycode (``xn--``) is a real name, and it must not be a mixed-script lookalike."""
    if not label.startswith("xn--"):
        raise InvalidRequest(
            f"DomainName {raw!r}: label {label!r} has '--' in positions 3-4, which DNS "
            f"reserves for encoded names"
        )
    try:
        text = idna.decode(label)
        if idna.encode(text).decode() != label:
            raise idna.IDNAError("not in canonical form")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidRequest(
            f"DomainName {raw!r}: label {label!r} is not valid punycode ({exc})"
        ) from exc
    scripts = {_script(ch) for ch in text if ch.isalpha()} & _CONFUSABLE_SCRIPTS
    if len(scripts) > 1:
        raise InvalidRequest(
            f"DomainName {raw!r}: label {label!r} ({text}) mixes {' and '.join(sorted(scripts))}"
            f" letters, a lookalike of another name"
        )


def _script(ch: str) -> str:
    return unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
