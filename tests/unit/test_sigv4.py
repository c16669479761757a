"""SigV4 verification against requests signed by botocore, boto3 and the AWS CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence

from slipway.api.sigv4 import Caller, verify
from slipway.errors import InvalidSignature, MissingAuthenticationToken, UnrecognizedClient

AKID = "SLIPWAYAKIDEXAMPLE01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = {AKID: SECRET}
ENDPOINT = "http://127.0.0.1:8780"
WHEN = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
MISMATCH = "The request signature we calculated does not match the signature you provided."


def wire(method: str, url: str, headers, body: bytes | None) -> dict:
    """What the server sees: raw path and query, str headers incl. the Host urllib3 sends."""
    parts = urlsplit(url)
    out = {k: v.decode() if isinstance(v, bytes) else v for k, v in headers.items()}
    out.setdefault("Host", parts.netloc)
    return {
        "method": method,
        "path": parts.path or "/",
        "query": parts.query,
        "headers": out,
        "body": body or b"",
    }


def check(req: dict, *, now: datetime | None = WHEN, **kwargs) -> Caller:
    return verify(
        req["method"],
        req["path"],
        req["query"],
        req["headers"],
        req["body"],
        KEYS.get,
        now=now,
        **kwargs,
    )


def sign(
    url: str = ENDPOINT + "/",
    *,
    method: str = "POST",
    body: bytes = b'{"MaxResults": 5}',
    headers: dict | None = None,
    params=None,
    region: str = "us-east-1",
    service: str = "apprunner",
    when: datetime = WHEN,
    akid: str = AKID,
    secret: str = SECRET,
) -> dict:
    """Sign with botocore's SigV4Auth at a fixed time, as slipway's CLI does."""
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        params=params or {},
        headers=headers
        if headers is not None
        else {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AppRunner.ListServices",
        },
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(Credentials(akid, secret), service, region).add_auth(request)
    prepared = request.prepare()
    return wire(prepared.method, prepared.url, prepared.headers, prepared.body)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


def boto3_request(operation: str, region: str = "eu-west-3", **params) -> dict:
    """The request boto3 sends for one App Runner call, captured before it leaves."""
    client = boto3.client(
        "apprunner",
        endpoint_url=ENDPOINT,
        region_name=region,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
    )
    captured = {}

    def before_send(request, **_):
        captured["request"] = request
        return AWSResponse(request.url, 200, {}, _Body(b"{}"))

    client.meta.events.register("before-send", before_send)
    getattr(client, operation)(**params)
    r = captured["request"]
    return wire(r.method, r.url, r.headers, r.body)


# --- what clients send verifies ------------------------------------------------------


def test_boto3_list_services():
    req = boto3_request("list_services", MaxResults=5)
    assert req["headers"]["X-Amz-Target"] == "AppRunner.ListServices"
    assert check(req, now=None) == Caller(access_key_id=AKID)


def test_boto3_create_service_with_unicode_body():
    req = boto3_request(
        "create_service",
        region="ap-southeast-2",
        ServiceName="hello-svc",
        SourceConfiguration={
            "ImageRepository": {
                "ImageIdentifier": "127.0.0.1:5000/hello:v1",
                "ImageRepositoryType": "ECR_PUBLIC",
                "ImageConfiguration": {
                    "Port": "8080",
                    "RuntimeEnvironmentVariables": {"GREETING": "¡hola, 世界!"},
                },
            }
        },
    )
    assert check(req, now=None).access_key_id == AKID


def test_botocore_sigv4auth():
    assert check(sign()) == Caller(AKID)


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_header_names_are_case_insensitive(case):
    req = sign()
    req["headers"] = {case(k): v for k, v in req["headers"].items()}
    assert check(req) == Caller(AKID)


def test_any_region_is_accepted():
    for region in ("us-east-1", "eu-central-2", "local", "slipway-home-1"):
        assert check(sign(region=region)) == Caller(AKID)


def test_with_the_agents_region_another_region_is_refused_naming_both():
    assert check(sign(region="eu-west-1"), region="eu-west-1") == Caller(AKID)
    with pytest.raises(InvalidSignature, match="'us-east-1'.*serves region 'eu-west-1'"):
        check(sign(region="us-east-1"), region="eu-west-1")


def test_path_and_params_as_signed_by_botocore():
    # prepare() sends params with urlencode ("+" for a space); the signature used "%20".
    req = sign(
        ENDPOINT + "/slipway/v1/services/my%20svc/logs/./x/../tail",
        method="GET",
        body=b"",
        headers={},
        params=[
            ("since", "2026-01-01T00:00:00Z"),
            ("b", "x/y ~z"),
            ("a", "2"),
            ("a", "1"),
            ("e", ""),
        ],
    )
    assert req["path"] == "/slipway/v1/services/my%20svc/logs/./x/../tail"
    assert "since=2026-01-01T00%3A00%3A00Z" in req["query"]
    assert check(req) == Caller(AKID)


def test_plus_from_params_cannot_be_swapped_for_a_literal_plus():
    req = sign(
        ENDPOINT + "/slipway/v1/logs", method="GET", body=b"", headers={}, params={"q": "a b"}
    )
    assert req["query"] == "q=a+b"
    req["query"] = "q=a%2Bb"
    with pytest.raises(InvalidSignature, match=f"^{MISMATCH}"):
        check(req)


def test_percent_encoded_query_in_the_url():
    query = percent_encode_sequence([("q", "a b+c/é"), ("z", "~"), ("a", "")])
    req = sign(ENDPOINT + "/slipway/v1/logs?" + query, method="GET", body=b"", headers={})
    assert req["query"] == "q=a%20b%2Bc%2F%C3%A9&z=~&a="
    assert check(req) == Caller(AKID)


def test_query_in_the_url_as_signed_by_botocore():
    req = sign(
        ENDPOINT + "/slipway/v1/keys?limit=5&after=k%2F1", method="GET", body=b"", headers={}
    )
    assert req["query"] == "limit=5&after=k%2F1"
    assert check(req) == Caller(AKID)


def test_date_header_instead_of_x_amz_date():
    req = sign(
        headers={
            "Date": format_datetime(WHEN, usegmt=True),
            "Content-Type": "application/x-amz-json-1.0",
        }
    )
    assert "X-Amz-Date" not in req["headers"]
    assert check(req) == Caller(AKID)


def test_signed_content_sha256_header():
    body = b'{"MaxResults": 5}'
    headers = {
        "X-Amz-Target": "AppRunner.ListServices",
        "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
    }
    req = sign(body=body, headers=headers)
    assert "x-amz-content-sha256" in req["headers"]["Authorization"]
    assert check(req) == Caller(AKID)
    req["body"] = b'{"MaxResults": 6}'
    with pytest.raises(InvalidSignature, match="'x-amz-content-sha256' header does not match"):
        check(req)


def test_unsigned_headers_may_change():
    req = boto3_request("list_services")
    req["headers"]["User-Agent"] = "something else"
    req["headers"]["amz-sdk-request"] = "attempt=2; max=3"
    req["headers"]["X-Forwarded-For"] = "10.0.0.1"
    assert check(req, now=None) == Caller(AKID)


def test_within_skew_in_both_directions():
    req = sign()
    assert check(req, now=WHEN + timedelta(minutes=14, seconds=59))
    assert check(req, now=WHEN - timedelta(minutes=14, seconds=59))


# --- a real socket: boto3 and the AWS CLI over HTTP -------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path, _, query = self.path.partition("?")
        self.seen.append(
            {
                "method": "POST",
                "path": path,
                "query": query,
                "headers": dict(self.headers.items()),
                "body": body,
            }
        )
        payload = json.dumps({"ServiceSummaryList": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_boto3_over_a_socket(recorder):
    endpoint, seen = recorder
    client = boto3.client(
        "apprunner",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
    )
    client.list_services(MaxResults=3)
    (req,) = seen
    assert req["headers"]["Host"] == endpoint.removeprefix("http://")
    assert check(req, now=None) == Caller(AKID)


def _aws_cli() -> list[str] | None:
    exe = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    return [exe] if exe else None


@pytest.mark.skipif(_aws_cli() is None, reason="AWS CLI not installed")
def test_aws_cli_over_a_socket(recorder, tmp_path):
    endpoint, seen = recorder
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
    }
    subprocess.run(
        [*_aws_cli(), "apprunner", "list-services", "--endpoint-url", endpoint],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    (req,) = seen
    assert req["headers"]["X-Amz-Target"] == "AppRunner.ListServices"
    assert check(req, now=None) == Caller(AKID)


# --- each failure, with AWS's error ---------------------------------------------------------


def test_no_authorization_header():
    req = sign()
    del req["headers"]["Authorization"]
    with pytest.raises(MissingAuthenticationToken, match="^Missing Authentication Token$"):
        check(req)


def test_empty_authorization_header():
    req = sign()
    req["headers"]["Authorization"] = "  "
    with pytest.raises(MissingAuthenticationToken):
        check(req)


def test_unknown_access_key():
    req = sign(akid="AKIDNOBODYKNOWS00000")
    with pytest.raises(UnrecognizedClient) as info:
        check(req)
    assert info.value.message == "The security token included in the request is invalid."
    assert info.value.code == "UnrecognizedClientException" and info.value.status == 403


def test_wrong_secret():
    req = sign(secret="not-the-secret")
    with pytest.raises(InvalidSignature) as info:
        check(req)
    assert info.value.message == (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details."
    )
    assert info.value.code == "InvalidSignatureException" and info.value.status == 403


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda r: r.update(body=r["body"] + b" "), id="body"),
        pytest.param(lambda r: r.update(body=b""), id="empty-body"),
        pytest.param(lambda r: r.update(method="PUT"), id="method"),
        pytest.param(lambda r: r.update(path="/other"), id="path"),
        pytest.param(lambda r: r.update(query="a=1"), id="query"),
        pytest.param(
            lambda r: r["headers"].update({"X-Amz-Target": "AppRunner.DeleteService"}),
            id="signed-header",
        ),
        pytest.param(lambda r: r["headers"].update({"Host": "evil.example:8780"}), id="host"),
        pytest.param(
            lambda r: r["headers"].update(
                {"Authorization": r["headers"]["Authorization"].replace("us-east-1", "us-west-2")}
            ),
            id="region-in-scope",
        ),
        pytest.param(
            lambda r: r["headers"].update(
                {"Authorization": r["headers"]["Authorization"][:-1] + "0"}
            ),
            id="signature",
        ),
        pytest.param(
            lambda r: r["headers"].update(
                {"X-Amz-Date": r["headers"]["X-Amz-Date"].replace("T120000Z", "T120001Z")}
            ),
            id="x-amz-date",
        ),
    ],
)
def test_tampering_breaks_the_signature(tamper):
    req = sign()
    tamper(req)
    with pytest.raises(InvalidSignature, match=f"^{MISMATCH}"):
        check(req)


def test_unsigned_payload_is_refused():
    req = sign(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(InvalidSignature, match="payload must be signed"):
        check(req)


def test_signature_expired():
    req = sign()
    with pytest.raises(InvalidSignature) as info:
        check(req, now=WHEN + timedelta(minutes=16))
    assert info.value.message == (
        "Signature expired: 20260101T120000Z is now earlier than 20260101T120100Z "
        "(20260101T121600Z - 15 min.)"
    )


def test_signature_not_yet_current():
    req = sign()
    with pytest.raises(InvalidSignature, match="^Signature not yet current: 20260101T120000Z"):
        check(req, now=WHEN - timedelta(minutes=20))


def test_custom_skew():
    req = sign()
    with pytest.raises(InvalidSignature, match=r"- 1 min\.\)$"):
        check(req, now=WHEN + timedelta(minutes=2), max_skew=timedelta(minutes=1))


def test_wrong_service_in_scope():
    req = sign(service="lambda")
    with pytest.raises(InvalidSignature) as info:
        check(req)
    assert info.value.message == "Credential should be scoped to correct service: 'apprunner'."


def test_other_service_name_when_asked():
    assert check(sign(service="slipway"), service="slipway") == Caller(AKID)


def _with_authorization(value: str) -> dict:
    req = sign()
    req["headers"]["Authorization"] = value
    return req


def _auth(credential=None, signed="content-type;host;x-amz-date;x-amz-target", signature="0" * 64):
    credential = credential or f"{AKID}/20260101/us-east-1/apprunner/aws4_request"
    return (
        f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    )


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("AWS AKID:c2lnbmF0dXJl", "Unsupported authorization algorithm 'AWS'"),
        ("Bearer abc", "Unsupported authorization algorithm 'Bearer'"),
        ("AWS4-HMAC-SHA256", "requires 'Credential' parameter"),
        (
            f"AWS4-HMAC-SHA256 Credential={AKID}/20260101/us-east-1/apprunner/aws4_request",
            "requires 'SignedHeaders' parameter. Authorization header requires 'Signature'",
        ),
        (_auth() + ", Signature=" + "1" * 64, "is not a single key=value pair"),
        (_auth() + ", junk", "'junk' is not a single key=value pair"),
        (_auth(credential=f"{AKID}/20260101/us-east-1/apprunner"), "malformed Credential"),
        (_auth(credential=f"{AKID}//us-east-1/apprunner/aws4_request"), "malformed Credential"),
        (_auth(credential=f"{AKID}/2026-01-01/us-east-1/apprunner/aws4_request"), "malformed date"),
        (
            _auth(credential=f"{AKID}/20260101/us-east-1/apprunner/aws4_reques"),
            "valid terminator: 'aws4_request', not 'aws4_reques'",
        ),
        (
            _auth(credential=f"{AKID}/20260101/US East/apprunner/aws4_request"),
            "scoped to a valid region, not 'US East'",
        ),
        (
            _auth(credential=f"{AKID}/20260102/us-east-1/apprunner/aws4_request"),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP: '20260102' != '20260101', from '20260101T120000Z'.",
        ),
        (
            _auth(signed="content-type;x-amz-date"),
            "'Host' or ':authority' must be a 'SignedHeader'",
        ),
        (_auth(signed="Host;x-amz-date"), "malformed header name 'Host'"),
        (_auth(signed="host;;x-amz-date"), "malformed header name ''"),
        (_auth(signed="host;x-amz-date;x-custom"), "Signed header 'x-custom' is not present"),
        (_auth(signature="abc"), "Signature is malformed"),
        (_auth(signature="A" * 64), "Signature is malformed"),
    ],
)
def test_malformed_authorization(authorization, message):
    with pytest.raises(InvalidSignature) as info:
        check(_with_authorization(authorization))
    assert message in info.value.message


def test_missing_date():
    req = sign()
    del req["headers"]["X-Amz-Date"]
    with pytest.raises(InvalidSignature, match="either a 'X-Amz-Date' or a 'Date' header"):
        check(req)


@pytest.mark.parametrize("value", ["2026-01-01T12:00:00Z", "20261301T120000Z", "yesterday"])
def test_malformed_x_amz_date(value):
    req = sign()
    req["headers"]["X-Amz-Date"] = value
    with pytest.raises(InvalidSignature, match="X-Amz-Date"):
        check(req)


def test_lookup_is_asked_for_the_signing_key():
    asked = []

    def lookup(akid: str) -> str | None:
        asked.append(akid)
        return SECRET

    req = sign()
    verify(req["method"], req["path"], req["query"], req["headers"], req["body"], lookup, now=WHEN)
    assert asked == [AKID]


def test_malformed_requests_do_not_reach_the_key_store():
    def lookup(akid: str) -> str | None:
        raise AssertionError("looked up a key for a malformed request")

    req = sign(service="lambda")
    with pytest.raises(InvalidSignature):
        verify(req["method"], req["path"], req["query"], req["headers"], req["body"], lookup)


class _MultiDict(dict):
    """A headers mapping whose items() repeat a header, as Starlette's Headers does."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self._pairs = list(pairs)

    def items(self):
        return list(self._pairs)


def test_repeated_signed_header_is_joined_with_commas():
    request = AWSRequest(method="POST", url=ENDPOINT + "/", data=b"{}")
    request.headers["X-Amz-Meta-Tag"] = "one"
    request.headers["X-Amz-Meta-Tag"] = "two"  # HTTPHeaders appends
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        SigV4Auth(Credentials(AKID, SECRET), "apprunner", "us-east-1").add_auth(request)
    pairs = [(k, v) for k, v in request.headers.items()] + [("Host", "127.0.0.1:8780")]
    assert [v for k, v in pairs if k == "X-Amz-Meta-Tag"] == ["one", "two"]
    assert verify("POST", "/", "", _MultiDict(pairs), b"{}", KEYS.get, now=WHEN) == Caller(AKID)


def test_naive_now_is_utc():
    assert check(sign(), now=WHEN.replace(tzinfo=None) + timedelta(minutes=10)) == Caller(AKID)
