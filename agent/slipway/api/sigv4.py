"""Verify AWS Signature Version 4 on incoming requests, as AWS does.

Clients (boto3, the AWS CLI, slipway's own CLI) sign with botocore's
``SigV4Auth``; the server recomputes the signature with the same class, so
the canonical request is built by the very code that built the client's.
Only the server-side part is ours: parsing the ``Authorization`` header,
feeding botocore exactly the headers named in ``SignedHeaders`` (botocore,
as a signer, would pick its own set), the clock-skew window, and the error
each failure maps to.

Two things the caller must get right:

* ``path`` is the *raw* request path as it came on the wire, still
  percent-encoded (ASGI ``scope["raw_path"]``), because botocore encodes the
  already-encoded path once more for non-S3 services.
* ``headers`` are those received; ``Host`` must be the value the client sent
  (a proxy in front must preserve it).

Query-string (presigned) authentication is not supported: a request without an
``Authorization`` header is unauthenticated.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from ..errors import InvalidSignature, MissingAuthenticationToken, UnrecognizedClient

__all__ = ["ALGORITHM", "Caller", "verify"]

ALGORITHM = "AWS4-HMAC-SHA256"

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_UNKNOWN_KEY = "The security token included in the request is invalid."

_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_SCOPE_DATE_RE = re.compile(r"[0-9]{8}")
_AMZ_DATE_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_SHA256_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Caller:
    """Who signed the request: the access key that verified."""

    access_key_id: str


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    scope_date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


class _VerifyingAuth(SigV4Auth):
    """``SigV4Auth`` that canonicalizes exactly the headers the client signed.

    As a signer botocore chooses the headers itself (all but a blacklist, plus
    ``host`` taken from the URL); a verifier must use the client's
    ``SignedHeaders`` list instead, nothing more and nothing less.
    """

    def __init__(
        self,
        credentials: Credentials,
        service: str,
        region: str,
        signed: Iterable[tuple[str, list[str]]],
        payload_hash: str,
    ) -> None:
        super().__init__(credentials, service, region)
        self._signed = list(signed)
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name, values in self._signed:
            for value in values:
                header_map[name] = value
        return header_map

    def payload(self, request: AWSRequest) -> str:
        # Used only when X-Amz-Content-SHA256 was not signed.
        return self._payload_hash


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_secret: Callable[[str], str | None],
    *,
    service: str = "apprunner",
    region: str | None = None,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
) -> Caller:
    """Check the SigV4 signature of one request and return who signed it.

    ``lookup_secret`` maps an access key id to its secret, or ``None`` if the
    key is unknown (or disabled). With ``region``, the credential scope must name it:
    a client configured for another region is told so, rather than signing for a
    region whose resources this host does not hold. Raises ``MissingAuthenticationToken``,
    ``UnrecognizedClient`` or ``InvalidSignature`` with AWS's messages.
    """
    lowered = _lower_headers(headers)
    authorization = _first(lowered, "authorization")
    if authorization is None or not authorization.strip():
        raise MissingAuthenticationToken("Missing Authentication Token")
    auth = _parse_authorization(authorization)

    if auth.terminator != "aws4_request":
        raise InvalidSignature(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{auth.terminator}'."
        )
    if auth.service != service:
        raise InvalidSignature(f"Credential should be scoped to correct service: '{service}'.")
    if not _REGION_RE.fullmatch(auth.region):
        raise InvalidSignature(
            f"Credential should be scoped to a valid region, not '{auth.region}'."
        )
    if region is not None and auth.region != region:
        raise InvalidSignature(
            f"Credential should be scoped to a valid region, not '{auth.region}'. "
            f"This endpoint serves region '{region}'."
        )
    if "host" not in auth.signed_headers:
        raise InvalidSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    timestamp = _request_timestamp(lowered)
    if auth.scope_date != timestamp[:8]:
        raise InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.scope_date}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    missing = [h for h in auth.signed_headers if h not in lowered]
    if missing:
        raise InvalidSignature(
            f"Signed header '{missing[0]}' is not present in the request; "
            "SignedHeaders must only name headers that are sent."
        )

    payload_hash = _payload_hash(lowered, body)

    secret = lookup_secret(auth.access_key_id)
    if secret is None:
        raise UnrecognizedClient(_UNKNOWN_KEY)

    _check_skew(timestamp, now, max_skew)

    provided = auth.signature.encode("ascii")
    for expected in _expected_signatures(
        method, path, query, lowered, auth, timestamp, secret, payload_hash
    ):
        if hmac.compare_digest(expected.encode("ascii"), provided):
            return Caller(access_key_id=auth.access_key_id)
    raise InvalidSignature(_SIGNATURE_MISMATCH)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Header values by lower-case name; repeated headers keep every value.

    ``items()`` of a multi-dict (Starlette's ``Headers``) yields each repeat,
    which SigV4 joins with commas, as botocore's ``canonical_headers`` does.
    """
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), []).append(value)
    return lowered


def _first(lowered: dict[str, list[str]], name: str) -> str | None:
    values = lowered.get(name)
    return values[0] if values else None


def _parse_authorization(value: str) -> _Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidSignature(
            f"Unsupported authorization algorithm '{algorithm}': "
            f"only {ALGORITHM} (Signature Version 4) is accepted."
        )
    params: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        key = key.strip()
        if not eq or key in params:
            raise InvalidSignature(
                f"Authorization header is malformed: '{part}' is not a single key=value pair."
            )
        params[key] = val.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not params.get(k)]
    if missing:
        raise InvalidSignature(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
        )

    credential = params["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise InvalidSignature(
            f"Authorization header has a malformed Credential '{params['Credential']}': "
            "expected <AccessKeyId>/<YYYYMMDD>/<region>/<service>/aws4_request."
        )
    access_key_id, scope_date, region, scope_service, terminator = credential
    if not _SCOPE_DATE_RE.fullmatch(scope_date):
        raise InvalidSignature(
            f"Credential has a malformed date '{scope_date}': expected YYYYMMDD."
        )

    signed_headers = tuple(params["SignedHeaders"].split(";"))
    for name in signed_headers:
        if not _HEADER_NAME_RE.fullmatch(name):
            raise InvalidSignature(
                f"SignedHeaders has a malformed header name '{name}': "
                "expected lower-case names separated by ';'."
            )

    signature = params["Signature"]
    if not _SIGNATURE_RE.fullmatch(signature):
        raise InvalidSignature(
            "Signature is malformed: expected 64 lower-case hexadecimal characters."
        )
    return _Authorization(
        access_key_id=access_key_id,
        scope_date=scope_date,
        region=region,
        service=scope_service,
        terminator=terminator,
        signed_headers=signed_headers,
        signature=signature,
    )


def _request_timestamp(lowered: dict[str, list[str]]) -> str:
    """The signing time as ``YYYYMMDDTHHMMSSZ``, from X-Amz-Date or else Date."""
    amz_date = _first(lowered, "x-amz-date")
    if amz_date is not None:
        amz_date = amz_date.strip()
        if not _AMZ_DATE_RE.fullmatch(amz_date):
            raise InvalidSignature(
                f"X-Amz-Date '{amz_date}' is malformed: expected YYYYMMDD'T'HHMMSS'Z'."
            )
        try:
            datetime.strptime(amz_date, SIGV4_TIMESTAMP)
        except ValueError:
            raise InvalidSignature(f"X-Amz-Date '{amz_date}' is not a valid date.") from None
        return amz_date
    date = _first(lowered, "date")
    if date is not None:
        try:
            parsed = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise InvalidSignature(f"Date header '{date}' is malformed.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
    raise InvalidSignature(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def _check_skew(timestamp: str, now: datetime | None, max_skew: timedelta) -> None:
    signed_at = datetime.strptime(timestamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    # A naive ``now`` is taken as UTC, like the X-Amz-Date it is compared with.
    current = current.replace(tzinfo=UTC) if current.tzinfo is None else current.astimezone(UTC)
    minutes = int(max_skew.total_seconds() // 60)

    def fmt(moment: datetime) -> str:
        return moment.strftime(SIGV4_TIMESTAMP)

    if signed_at < current - max_skew:
        raise InvalidSignature(
            f"Signature expired: {timestamp} is now earlier than {fmt(current - max_skew)} "
            f"({fmt(current)} - {minutes} min.)"
        )
    if signed_at > current + max_skew:
        raise InvalidSignature(
            f"Signature not yet current: {timestamp} is still later than "
            f"{fmt(current + max_skew)} ({fmt(current)} + {minutes} min.)"
        )


def _payload_hash(lowered: dict[str, list[str]], body: bytes) -> str:
    """SHA-256 of the body; a sent X-Amz-Content-SHA256 must agree with it.

    Unsigned and streaming payloads are refused: the body of a control call
    must be covered by the signature.
    """
    computed = hashlib.sha256(body).hexdigest()
    claimed = _first(lowered, "x-amz-content-sha256")
    if claimed is None:
        return computed
    claimed = claimed.strip()
    if not _SHA256_HEX_RE.fullmatch(claimed):
        raise InvalidSignature(
            f"X-Amz-Content-SHA256 '{claimed}' is not accepted: "
            "the payload must be signed with its hex SHA-256."
        )
    if claimed.lower() != computed:
        raise InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    return computed


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs, ``+`` read as a space, blank values kept."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def _expected_signatures(
    method: str,
    path: str,
    query: str,
    lowered: dict[str, list[str]],
    auth: _Authorization,
    timestamp: str,
    secret: str,
    payload_hash: str,
) -> list[str]:
    """The signature of each canonical form a botocore signer may have used.

    botocore canonicalizes a query in one of two ways, and both reach us:
    a query already in the URL is used verbatim (sorted), which is what its
    service clients send, fully percent-encoded; ``AWSRequest(params=...)``
    is re-encoded with ``%20`` for a space while ``prepare()`` sends the URL
    with ``urlencode``'s ``+``. The first form is tried first; the second only
    when it differs. Either way the signature covers the query.
    """
    if not path.startswith("/"):
        path = "/" + path
    signed = [(name, lowered[name]) for name in auth.signed_headers]
    signer = _VerifyingAuth(
        Credentials(auth.access_key_id, secret),
        auth.service,
        auth.region,
        signed,
        payload_hash,
    )
    headers = {name: ",".join(values) for name, values in signed}
    # The URL's host is never read: headers_to_sign is overridden.
    base = "http://slipway.invalid" + path
    as_sent = AWSRequest(
        method=method.upper(), url=f"{base}?{query}" if query else base, headers=headers
    )
    candidates = [as_sent]
    reencoded = AWSRequest(
        method=method.upper(), url=base, headers=headers, params=_query_pairs(query)
    )
    if signer.canonical_query_string(reencoded) != signer.canonical_query_string(as_sent):
        candidates.append(reencoded)

    signatures = []
    for request in candidates:
        request.context["timestamp"] = timestamp
        canonical_request = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical_request)
        signatures.append(signer.signature(string_to_sign, request))
    return signatures
