"""A Release is everything needed to start instances of one revision: the image to run
and how to run it. Image services resolve a tag to a digest; code services fetch a
commit, read its configuration and build an image from it."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .builds import CodeConfig, SecretRef
from .builds.config import MAX_CONFIG_BYTES, ConfigFileError, from_api_values, parse_apprunner_yaml
from .models import CodeSource, ServiceSpec
from .sources.git import Commit
from .sources.registry import ImageRef
from .workers import check_network

CONFIG_FILE = "apprunner.yaml"


@dataclass(frozen=True)
class Release:
    revision: str  # image digest, or commit SHA
    image: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    command: str | None = None
    pull: bool = True  # False for images built on this host
    secrets: tuple[SecretRef, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        secrets = tuple(SecretRef(**s) for s in data.get("secrets", ()))
        return cls(**{**data, "secrets": secrets})


class Git(Protocol):
    def head(self, url: str, branch: str, token: str | None = None) -> str: ...

    def checkout(
        self,
        url: str,
        branch: str,
        dest: Path,
        *,
        sha: str | None = None,
        source_directory: str | None = None,
        token: str | None = None,
    ) -> tuple[Commit, Path]: ...


class SecretReader(Protocol):
    def resolve(self, service: str, refs: tuple[SecretRef, ...]) -> dict[str, str]: ...


class Builder(Protocol):
    def build(
        self,
        service_name: str,
        source_root: Path,
        config: CodeConfig,
        revision: str,
        log: Callable[[str], None],
    ) -> Any: ...


def image_release(spec: ServiceSpec, digest: str) -> Release:
    image = spec.source.image
    return Release(
        revision=digest,
        image=ImageRef.parse(image.identifier).with_digest(digest),
        port=int(image.port),
        env=dict(image.env),
        command=image.start_command,
        secrets=tuple(SecretRef(name, ref) for name, ref in image.secrets.items()),
    )


def read_config(code: CodeSource, root: Path) -> CodeConfig:
    """The branch's apprunner.yaml (REPOSITORY) or the API's values (API)."""
    if code.configuration_source == "API":
        return from_api_values(code.values or {})
    path = root / CONFIG_FILE
    where = (
        f"{code.source_directory.strip('/')}/{CONFIG_FILE}"
        if code.source_directory
        else CONFIG_FILE
    )
    if not path.is_file():
        place = "source directory" if code.source_directory else "repository root"
        raise ConfigFileError(
            where, None, None, f"not found; ConfigurationSource REPOSITORY needs it in the {place}"
        )
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            where, None, None, f"{path.stat().st_size} bytes; the limit is {MAX_CONFIG_BYTES}"
        )
    return parse_apprunner_yaml(path.read_bytes(), filename=where)


def code_release(
    service_name: str,
    spec: ServiceSpec,
    git: Git,
    builder: Builder,
    work_dir: Path,
    log: Callable[[str], None],
    secrets: SecretReader,
    *,
    ref: str | None = None,
    sha: str | None = None,
    token: str | None = None,
) -> Release:
    """Fetch ``sha`` of ``ref`` (default: the branch's tip), read its configuration,
    build the image. Its secrets are resolved (values dropped) before the build, so a
    missing or ungranted one fails at once rather than after minutes of building."""
    code = spec.source.code
    ref = ref or code.branch
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="build-") as tmp:
        log(f"[AppRunner] Pulling source code from {code.repository_url} {ref}")
        commit, root = git.checkout(
            code.repository_url,
            ref,
            Path(tmp) / "src",
            sha=sha,
            source_directory=code.source_directory,
            token=token,
        )
        summary = commit.message.splitlines()[0] if commit.message else ""
        log(f"[AppRunner] Commit {commit.sha[:7]} by {commit.author}: {summary}")
        config = read_config(code, root)
        check_network(spec.worker, config.network, CONFIG_FILE)
        secrets.resolve(service_name, config.secrets)
        log(f"[AppRunner] Runtime {config.runtime}; building the image")
        result = builder.build(service_name, root, config, commit.sha, log)
    env = dict(config.env)
    if config.port_env:
        env[config.port_env] = str(config.port)
    return Release(
        revision=commit.sha,
        image=result.image,
        port=config.port,
        env=env,
        pull=False,
        secrets=config.secrets,
        detail={
            "commit": commit.sha,
            "author": commit.author,
            "message": commit.message,
            "runtime": config.runtime,
            "runtime_version": result.runtime_version,
        },
    )
