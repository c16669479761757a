"""Secret names, their size limit, and the references that point at them: pure rules,
checked where input arrives (the API edge, ``apprunner.yaml``) and again where a
deployment resolves them (``service_secrets.py``).

A name follows Secrets Manager's alphabet, which also covers SSM parameter names:
1 to 512 of ``A-Z a-z 0-9 / _ + = . @ -``, no leading, trailing or doubled ``/``
(``prod/db/password`` is a name; SSM's ``/prod/db/password`` is the same secret).

A reference (``RuntimeEnvironmentSecrets`` values, ``run.secrets[].value-from``) is:

* ``arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[-XXXXXX][:JSON_KEY[:STAGE[:ID]]]``:
  Secrets Manager's ARN, with the six characters it appends to every name; a JSON key
  picks one member of a JSON object value; a version stage may only be ``AWSCURRENT``
  and a version id must be empty (slipway keeps one version of each secret);
* ``arn:aws:ssm:REGION:ACCOUNT:parameter/NAME``: an SSM parameter;
* ``NAME``: a plain name, as App Runner takes for a parameter of its own region (one
  leading ``/``, as SSM writes hierarchical names, is dropped).

REGION and ACCOUNT must be well formed but are not compared with this host's: one host
has one namespace of secrets, so configuration copied from AWS works unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidRequest

MAX_NAME = 512
_NAME = re.compile(r"[A-Za-z0-9_+=.@-]+(?:/[A-Za-z0-9_+=.@-]+)*")
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}")
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>secretsmanager|ssm):(?P<region>[a-z0-9-]*)"
    r":(?P<account>[0-9]{12}):(?P<resource>.+)"
)
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-_]{3,39}")  # botocore's ServiceName
# Linux refuses one environment string ("NAME=value") over 128 KiB; leave room for NAME.
MAX_VALUE_LIMIT = 124 * 1024


@dataclass(frozen=True)
class SecretLimits:
    """How large a secret's value may be; a setting (``secret_max_bytes``). Secrets
    Manager's own limit is the default."""

    max_bytes: int = 64 * 1024

    def check(self) -> None:
        """Refuse a limit that is no limit, or one no environment could carry."""
        if not 1 <= self.max_bytes <= MAX_VALUE_LIMIT:
            raise InvalidRequest(
                f"secret_max_bytes must be between 1 and {MAX_VALUE_LIMIT} (a value travels"
                f" as one environment variable), not {self.max_bytes}"
            )

    def check_value(self, name: str, value: str) -> None:
        """A value that can become an environment variable, within the limit. The
        message names the secret, never the value."""
        size = len(value.encode())
        if size == 0:
            raise InvalidRequest(f"secret {name}: the value is empty")
        if size > self.max_bytes:
            raise InvalidRequest(
                f"secret {name}: the value is {size} bytes; the limit is {self.max_bytes}"
                " (setting secret_max_bytes)"
            )
        if "\x00" in value:
            raise InvalidRequest(
                f"secret {name}: the value holds a NUL character, which no environment"
                " variable can carry"
            )


def check_name(name: str) -> str:
    """``name`` if it is a secret name, else InvalidRequest saying the rule."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"secret name {name!r}: use 1 to {MAX_NAME} of A-Z a-z 0-9 / _ + = . @ -,"
            " with no leading, trailing or doubled /"
        )
    return name


def check_service_name(name: str) -> str:
    """A service a secret can be granted to: App Runner's ServiceName rule. The service
    need not exist yet, so a secret can be granted before the service is created."""
    if not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name):
        raise InvalidRequest(
            f"service name {name!r}: 4 to 40 of A-Z a-z 0-9 - _, starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Pointer:
    """What a reference points at: a secret (``names``: candidates, the first that
    exists wins) and, for Secrets Manager's JSON form, one key of its JSON value."""

    names: tuple[str, ...]
    json_key: str | None = None


def parse_reference(reference: str) -> Pointer:
    """Where ``reference`` points, or InvalidRequest saying why it is not a reference
    slipway can resolve. Says nothing about whether that secret exists."""
    if not isinstance(reference, str) or not reference.strip():
        raise InvalidRequest("secret reference is empty")
    if not reference.startswith("arn:"):
        return Pointer((_named(reference.removeprefix("/"), reference),))
    match = _ARN.fullmatch(reference)
    if match is None:
        raise InvalidRequest(
            f"secret reference {reference!r} is not an ARN of the form"
            " arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or"
            " arn:aws:ssm:REGION:ACCOUNT:parameter/NAME"
        )
    resource = match["resource"]
    if match["service"] == "ssm":
        if not resource.startswith("parameter/"):
            raise InvalidRequest(f"secret reference {reference!r}: an SSM ARN names parameter/NAME")
        return Pointer((_named(resource.removeprefix("parameter/"), reference),))
    kind, _, rest = resource.partition(":")
    if kind != "secret" or not rest:
        raise InvalidRequest(
            f"secret reference {reference!r}: a Secrets Manager ARN names secret:NAME"
        )
    name, *extra = rest.split(":")
    if len(extra) > 3:
        raise InvalidRequest(
            f"secret reference {reference!r}: after the name come at most a JSON key, a"
            " version stage and a version id"
        )
    json_key, stage, version = [*extra, "", "", ""][:3]
    if stage not in ("", "AWSCURRENT") or version:
        raise InvalidRequest(
            f"secret reference {reference!r}: slipway keeps one version of each secret;"
            " leave the version stage empty (or AWSCURRENT) and the version id empty"
        )
    _named(name, reference)
    names = (name,)
    if _SUFFIX.fullmatch(name[-7:]) and len(name) > 7:
        names = (name, name[:-7])  # Secrets Manager's random suffix, or part of the name
    return Pointer(names, json_key or None)


def _named(name: str, reference: str) -> str:
    try:
        return check_name(name)
    except InvalidRequest as exc:
        raise InvalidRequest(f"secret reference {reference!r}: {exc.message}") from exc
