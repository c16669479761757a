"""Image references and the OCI distribution API: which digest does a tag point to now?

A Revision of an image service is a manifest digest, so a tag is resolved once
(``HEAD /v2/<repo>/manifests/<tag>``) and the digest is what gets pulled and run.
A service that tracks tags first lists them (``GET /v2/<repo>/tags/list``, page by page).
Registry and httpx errors are translated here into ``RegistryError`` subclasses.
"""

from __future__ import annotations

import functools
import hashlib
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..errors import (
    ImageNotFound,
    InvalidRequest,
    RegistryAuthFailed,
    RegistryError,
    RegistryUnreachable,
)
from ..outbound import link_local_reason

DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)

# The grammar of github.com/distribution/reference, reduced to what we accept.
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"^(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_LOOPBACK = re.compile(r"^(?:127\.\d+\.\d+\.\d+|localhost|\[::1\]|::1)(?::\d+)?$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_MAX_TAG_PAGES = 200  # a Link chain longer than this is a registry going round in circles


@dataclass(frozen=True)
class ImageRef:
    """A parsed image identifier: ``[registry/]repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, identifier: str) -> ImageRef:
        """Parse like ``docker pull`` does; no tag and no digest means ``latest``."""

        def bad(why: str) -> InvalidRequest:
            return InvalidRequest(f"image identifier {identifier!r} is not valid: {why}")

        if not identifier or any(c.isspace() for c in identifier):
            raise bad("it is empty or contains whitespace")
        rest, digest = identifier, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not _DIGEST.match(digest):
                raise bad(f"{digest!r} is not a digest like sha256:<64 hex>")
        registry = DOCKER_HUB
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            if not _DOMAIN.match(first):
                raise bad(f"{first!r} is not a registry host")
            why = link_local_reason(_host_of(first))
            if why:
                raise bad(why)
            registry, rest = first, remainder
        tag = None
        last_slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > last_slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG.match(tag):
                raise bad(f"{tag!r} is not a valid tag")
        if not rest:
            raise bad("the repository name is missing")
        for component in rest.split("/"):
            if not _PATH_COMPONENT.match(component):
                raise bad(f"repository {rest!r} must be lowercase letters, digits and separators")
        if registry == DOCKER_HUB and "/" not in rest:
            rest = f"library/{rest}"
        if len(registry) + 1 + len(rest) > 255:
            raise bad("the name is longer than 255 characters")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=rest, tag=tag, digest=digest)

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> str:
        """The pullable, immutable name of this image at ``digest``."""
        return f"{self.registry}/{self.repository}@{digest}"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _host_of(netloc: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port``."""
    return urlsplit(f"//{netloc}").hostname or netloc


def _refuse_link_local(request: httpx.Request) -> None:
    """A registry may redirect, or name a token realm, anywhere: never to a cloud's
    metadata address, with or without the credentials a token request carries."""
    why = link_local_reason(request.url.host)
    if why:
        raise RegistryError(f"refused to send a registry request to {request.url}: {why}")


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAM.findall(params)}


class RegistryClient:
    """Asks registries for manifest digests, handling bearer and basic auth."""

    def __init__(
        self,
        insecure_registries: Iterable[str] = (),
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.insecure_registries = frozenset(insecure_registries)
        self.timeout = timeout
        self.transport = transport  # tests swap in httpx.MockTransport

    def base_url(self, registry: str) -> str:
        """``http`` for loopback and configured insecure registries, ``https`` otherwise."""
        host = _DOCKER_HUB_API if registry == DOCKER_HUB else registry
        insecure = _LOOPBACK.match(registry) or registry in self.insecure_registries
        return f"{'http' if insecure else 'https'}://{host}"

    def resolve(self, ref: ImageRef, credentials: tuple[str, str] | None = None) -> str:
        """The manifest digest ``ref`` names now; a pinned digest is checked to exist."""
        url = f"{self.base_url(ref.registry)}/v2/{ref.repository}/manifests/{ref.reference}"
        with self._http() as client:
            try:
                response = self._authorized(client, "HEAD", url, ref, credentials)
                self._check(response, ref)
                digest = response.headers.get("Docker-Content-Digest")
                if ref.digest:
                    return ref.digest
                if digest:
                    return _checked_digest(digest, ref)
                response = self._authorized(client, "GET", url, ref, credentials)
                self._check(response, ref)
                _require_manifest(response, ref)
                digest = response.headers.get("Docker-Content-Digest") or (
                    "sha256:" + hashlib.sha256(response.content).hexdigest()
                )
            except httpx.HTTPError as exc:
                raise RegistryUnreachable(
                    f"registry {ref.registry} unreachable: {type(exc).__name__}: {exc}"
                ) from exc
        return _checked_digest(digest, ref)

    def list_tags(self, ref: ImageRef, credentials: tuple[str, str] | None = None) -> list[str]:
        """Every tag of ``ref``'s repository, in the registry's order, across all pages.

        Follows the ``Link: <...>; rel="next"`` chain; a bearer token got for the first
        page is sent with the next ones, so a long list costs one token, not one a page.
        """
        repository = ImageRef(ref.registry, ref.repository, None, None)  # for messages
        url = f"{self.base_url(ref.registry)}/v2/{ref.repository}/tags/list"
        headers = {"Accept": "application/json"}
        tags: list[str] = []
        seen = {url}
        with self._http() as client:
            try:
                for _ in range(_MAX_TAG_PAGES):
                    response = self._authorized(
                        client, "GET", url, repository, credentials, headers=headers
                    )
                    self._check(response, repository)
                    tags += _tags_of(response, repository)
                    link = response.links.get("next", {}).get("url")
                    if not link:
                        return tags
                    url = str(response.url.join(link))
                    if url in seen:
                        break
                    seen.add(url)
            except httpx.HTTPError as exc:
                raise RegistryUnreachable(
                    f"registry {ref.registry} unreachable: {type(exc).__name__}: {exc}"
                ) from exc
        raise RegistryError(
            f"registry {ref.registry} kept paging the tags of {repository}"
            f" (more than {_MAX_TAG_PAGES} pages, or a page twice)"
        )

    def _http(self) -> httpx.Client:
        return httpx.Client(
            timeout=self.timeout,
            follow_redirects=True,
            verify=_system_trust(),
            transport=self.transport,
            # Every request, its redirects and a token realm the registry names included.
            event_hooks={"request": [_refuse_link_local]},
        )

    def _authorized(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        ref: ImageRef,
        credentials: tuple[str, str] | None,
        *,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """``method url``, answering a 401's challenge once. Given ``headers`` are sent and
        keep the bearer token got here, so the caller's next request needs no new one."""
        if headers is None:
            headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        response = client.request(method, url, headers=headers)
        if response.status_code != 401:
            return response
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer" and params.get("realm"):
            token = self._token(client, params, ref, credentials)
            headers["Authorization"] = f"Bearer {token}"
        elif scheme == "basic" and credentials:
            return client.request(method, url, headers=headers, auth=credentials)
        elif scheme == "basic":
            raise RegistryAuthFailed(f"registry {ref.registry} requires credentials for {ref}")
        else:
            raise RegistryAuthFailed(
                f"registry {ref.registry} asked for unsupported authentication {scheme!r}"
            )
        return client.request(method, url, headers=headers)

    def _token(
        self,
        client: httpx.Client,
        challenge: dict[str, str],
        ref: ImageRef,
        credentials: tuple[str, str] | None,
    ) -> str:
        query = {"scope": challenge.get("scope") or f"repository:{ref.repository}:pull"}
        if challenge.get("service"):
            query["service"] = challenge["service"]
        response = client.get(challenge["realm"], params=query, auth=credentials)
        if response.status_code in (401, 403):
            raise RegistryAuthFailed(
                f"registry {ref.registry} refused a token for {ref.repository} "
                f"(HTTP {response.status_code})"
            )
        if response.status_code >= 400:
            raise _status_error(response, ref)
        try:
            body = response.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError) as exc:
            raise RegistryAuthFailed(
                f"registry {ref.registry} token endpoint gave no token: {exc}"
            ) from exc

    def _check(self, response: httpx.Response, ref: ImageRef) -> None:
        if response.status_code >= 400:
            raise _status_error(response, ref)


def _tags_of(response: httpx.Response, ref: ImageRef) -> list[str]:
    """The ``tags`` of one tags/list page; null (an empty repository) is no tags."""
    try:
        body = response.json()
        tags = body.get("tags") or []
    except (ValueError, AttributeError) as exc:
        raise RegistryError(
            f"registry {ref.registry} sent a tags list for {ref} that is not JSON"
        ) from exc
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"registry {ref.registry} sent a malformed tags list for {ref}")
    return tags


def _status_error(response: httpx.Response, ref: ImageRef) -> RegistryError:
    status = response.status_code
    if status == 404:
        return ImageNotFound(f"image {ref} not found in registry {ref.registry}")
    if status in (401, 403):
        return RegistryAuthFailed(f"registry {ref.registry} denied access to {ref} (HTTP {status})")
    if status == 429 or status >= 500:
        return RegistryUnreachable(f"registry {ref.registry} answered HTTP {status} for {ref}")
    return RegistryError(f"registry {ref.registry} answered HTTP {status} for {ref}")


_DIGEST_VALUE = re.compile(r"sha256:[0-9a-f]{64}")


@functools.cache
def _system_trust() -> ssl.SSLContext:
    """The system trust store, so a registry signed by a host-installed CA works; made
    once: loading it costs about 20 ms of CPU, more than the poll it serves."""
    return ssl.create_default_context()


def _checked_digest(digest: str, ref: ImageRef) -> str:
    """A digest header we will pull by must look like one."""
    if not _DIGEST_VALUE.fullmatch(digest.strip()):
        raise RegistryError(
            f"registry {ref.registry} answered {str(ref)!r} with a malformed digest"
        )
    return digest.strip()


def _require_manifest(response: httpx.Response, ref: ImageRef) -> None:
    """Hashing an answer only makes a digest if the answer is a manifest."""
    try:
        manifest = response.json()
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or "schemaVersion" not in manifest:
        raise RegistryError(
            f"registry {ref.registry} answered {str(ref)!r} with something that is not an"
            " image manifest"
        )
