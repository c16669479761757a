"""``--push-images``: an image copied from the account's registry to this host's, over
the OCI distribution API (manifests and blobs, as ``crane copy`` does), so no Docker
daemon is needed where the import runs. ECR is read with a token made from the
account's own credentials; the destination takes anonymous pushes (a host's registry
on loopback or its private network)."""

from __future__ import annotations

import base64
import json
import tempfile
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import RegistryError
from ..sources.ecr import ECR_HOST
from ..sources.registry import MANIFEST_TYPES, ImageRef, RegistryClient
from .account import SourceAccount

_INDEX_TYPES = {MANIFEST_TYPES[0], MANIFEST_TYPES[2]}
_CHUNK = 1 << 20


def ecr_login(source: SourceAccount, host: str) -> tuple[str, str] | None:
    """(user, password) for an ECR host from the account's credentials; None elsewhere."""
    match = ECR_HOST.fullmatch(host)
    if not match:
        return None
    try:
        answer = source.client("ecr").get_authorization_token(registryIds=[match.group(1)])
        token = answer["authorizationData"][0]["authorizationToken"]
    except (ClientError, BotoCoreError, KeyError, IndexError) as exc:
        raise RegistryError(f"ECR GetAuthorizationToken for {host} failed: {exc}") from exc
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


def copy_image(source: SourceAccount, from_image: str, to_image: str) -> None:
    """Copy ``from_image`` (with every platform of an index) to ``to_image``."""
    src, dst = ImageRef.parse(from_image), ImageRef.parse(to_image)
    base = RegistryClient().base_url
    copier = _Copier(
        f"{base(src.registry)}/v2/{src.repository}",
        f"{base(dst.registry)}/v2/{dst.repository}",
        ecr_login(source, src.registry),
    )
    try:
        copier.manifest(src.reference, dst.reference)
    except httpx.HTTPError as exc:
        raise RegistryError(f"copying {from_image} to {to_image}: {exc}") from exc
    finally:
        copier.http.close()


class _Copier:
    def __init__(self, src: str, dst: str, auth: tuple[str, str] | None) -> None:
        self.src, self.dst, self.auth = src, dst, auth
        self.http = httpx.Client(timeout=120, follow_redirects=True)

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code >= 400:
            raise RegistryError(f"{what}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def manifest(self, reference: str, put_as: str) -> None:
        got = self._checked(
            self.http.get(
                f"{self.src}/manifests/{reference}",
                headers={"Accept": ", ".join(MANIFEST_TYPES)},
                auth=self.auth,
            ),
            f"manifest {reference}",
        )
        media_type = got.headers.get("Content-Type", "").split(";")[0]
        body: dict[str, Any] = json.loads(got.content)
        if media_type in _INDEX_TYPES or "manifests" in body:
            for child in body["manifests"]:
                self.manifest(child["digest"], child["digest"])
        else:
            for blob in [body["config"], *body.get("layers", [])]:
                self.blob(blob["digest"])
        self._checked(
            self.http.put(
                f"{self.dst}/manifests/{put_as}",
                content=got.content,
                headers={"Content-Type": media_type},
            ),
            f"pushing manifest {put_as}",
        )

    def blob(self, digest: str) -> None:
        if self.http.head(f"{self.dst}/blobs/{digest}").status_code == 200:
            return
        with tempfile.TemporaryFile() as spool:
            with self.http.stream("GET", f"{self.src}/blobs/{digest}", auth=self.auth) as got:
                self._checked(got, f"blob {digest}")
                for chunk in got.iter_bytes(_CHUNK):
                    spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            start = self._checked(
                self.http.post(f"{self.dst}/blobs/uploads/"), f"starting upload of {digest}"
            )
            location = httpx.URL(self.dst).join(start.headers["Location"])
            self._checked(
                self.http.put(
                    location.copy_merge_params({"digest": digest}),
                    content=iter(lambda: spool.read(_CHUNK), b""),
                    headers={
                        "Content-Length": str(size),
                        "Content-Type": "application/octet-stream",
                    },
                ),
                f"pushing blob {digest}",
            )
