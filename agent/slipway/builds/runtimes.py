"""Managed runtimes: what ``runtimes/<name>/`` offers and which version a build gets.

Each runtime directory holds ``runtime.yaml`` (language, versions and their base images,
what the runtime is made of, default start command, dependency manifests,
dependency-install commands) and ``Dockerfile.template``, which ``builder.py`` renders.
A runtime App Runner has but this host cannot build says why in ``unavailable`` and has
no template. Everything here is pure: files in, data out; no docker.

A version key is exact (``"3.11.2"``) or, where the base image's source moves the patch
level under it (Debian's security updates of PHP and OpenJDK), a major.minor line
(``"8.2"``): then runtime-version may lock the major or the line, not a patch.

Errors (both terminal: retrying cannot help)::

    InvalidRequest
    ├── RuntimeUnavailable   no such runtime, or no version matching runtime-version
    └── EnginesConflict      package.json engines.node refuses the version to be used

Where the runtimes live: ``<repo>/runtimes``, found as ``Path(__file__).parents[3]``. That
holds for the source tree and for the editable install slipway uses; a wheel install
would have to ship ``runtimes/`` as package data and pass ``root`` explicitly.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import semver
from ..errors import InvalidRequest

__all__ = [
    "DEFAULT_ROOT",
    "PLACEHOLDERS",
    "EnginesConflict",
    "Runtime",
    "RuntimeUnavailable",
    "check_engines",
    "dependencies_need_source",
    "get_runtime",
    "load_runtimes",
    "resolve_for_source",
    "resolve_version",
    "satisfies",
]

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "runtimes"

#: The ``{{ name }}`` slots of a Dockerfile template; all but runtime_version are required.
PLACEHOLDERS = (
    "base_image",
    "runtime_version",
    "certificates",
    "build_env",
    "dependencies",
    "source",
    "build",
    "run",
)
_REQUIRED = frozenset(PLACEHOLDERS) - {"runtime_version"}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
_EXACT = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
_VERSION_KEY = re.compile(r"[0-9]+\.[0-9]+(?:\.[0-9]+)?")
_WANTED = re.compile(r"[0-9]+(?:\.[0-9]+){0,2}")
# A command with any of these does more than one thing (or reads files); it never
# counts as a dependency install, whatever the patterns say.
_SHELL_META = re.compile(r"[;&|<>()$`\\\n\"'*?{}]")


class RuntimeUnavailable(InvalidRequest):
    """The runtime, or a version matching runtime-version, is not on this host."""


class EnginesConflict(InvalidRequest):
    """package.json's engines.node and the runtime version disagree (the guide: build fails)."""


@dataclass(frozen=True)
class Runtime:
    name: str
    language: str
    versions: dict[str, str]  # exact version or major.minor line -> base image
    default_command: str | None
    manifests: tuple[str, ...]
    dependency_commands: tuple[str, ...]  # regexes, matched against a whole command
    template: str
    provides: str = ""  # what it is made of here, e.g. "PHP 8.2 (Debian bookworm's php-cli)"
    unavailable: str | None = None  # why this host cannot build it; then no versions

    def is_dependency_command(self, command: str) -> bool:
        """Whether ``command`` only installs dependencies, so it may run before the source copy."""
        command = command.strip()
        if not command or _SHELL_META.search(command):
            return False
        command = " ".join(command.split())
        return any(re.fullmatch(pattern, command) for pattern in self.dependency_commands)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _load_one(directory: Path) -> Runtime:
    spec_file = directory / "runtime.yaml"
    try:
        spec = yaml.safe_load(spec_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidRequest(f"{spec_file}: cannot read runtime spec: {exc}") from exc
    if not isinstance(spec, dict):
        raise InvalidRequest(f"{spec_file}: expected a mapping")
    name = str(spec.get("name") or "")
    if name != directory.name:
        raise InvalidRequest(f"{spec_file}: name {name!r} must be the directory name")
    language = str(spec.get("language") or "")
    unavailable = spec.get("unavailable")
    if unavailable is not None:
        if not isinstance(unavailable, str) or not unavailable.strip() or spec.get("versions"):
            raise InvalidRequest(f"{spec_file}: unavailable must be a reason, with no versions")
        return Runtime(name, language, {}, None, (), (), "", unavailable=unavailable.strip())
    versions_raw = spec.get("versions")
    if not isinstance(versions_raw, dict) or not versions_raw:
        raise InvalidRequest(f"{spec_file}: versions must map exact versions to base images")
    versions: dict[str, str] = {}
    for version, image in versions_raw.items():
        if (
            not isinstance(version, str)
            or not _VERSION_KEY.fullmatch(version)
            or not isinstance(image, str)
            or not image
        ):
            raise InvalidRequest(
                f"{spec_file}: versions: {version!r}: {image!r} must be an exact quoted "
                'version ("3.11.2"), or a quoted major.minor line ("8.2"), mapped to an image name'
            )
        versions[version] = image
    patterns = tuple(str(p) for p in spec.get("dependency_commands") or ())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidRequest(f"{spec_file}: bad dependency pattern {pattern!r}: {exc}") from exc
    template_file = directory / "Dockerfile.template"
    try:
        template = template_file.read_text()
    except OSError as exc:
        raise InvalidRequest(f"{template_file}: cannot read template: {exc}") from exc
    found = _PLACEHOLDER.findall(template)
    unknown = sorted(set(found) - set(PLACEHOLDERS))
    missing = sorted(_REQUIRED - set(found))
    if unknown or missing:
        raise InvalidRequest(
            f"{template_file}: unknown placeholders {unknown}, missing placeholders {missing}"
        )
    default_command = spec.get("default_command")
    return Runtime(
        name=name,
        language=language,
        versions=versions,
        default_command=str(default_command) if default_command else None,
        manifests=tuple(str(m) for m in spec.get("manifests") or ()),
        dependency_commands=patterns,
        template=template,
        provides=str(spec.get("provides") or ""),
    )


def load_runtimes(
    root: Path = DEFAULT_ROOT, base_image_overrides: Mapping[str, str] | None = None
) -> dict[str, Runtime]:
    """Read every ``<root>/<name>/runtime.yaml``; apply the host's base image overrides.

    ``base_image_overrides`` maps ``"<runtime>:<exact version>"`` or ``"<runtime>"`` to an
    image, so a host with a registry mirror can build on e.g. ``python:3.11-slim``. The
    exact key wins over the runtime-wide one; an exact key for a version the runtime does
    not list adds that version.
    """
    runtimes: dict[str, Runtime] = {}
    if root.is_dir():
        for directory in sorted(root.iterdir()):
            if (directory / "runtime.yaml").is_file():
                runtimes[directory.name] = _load_one(directory)
    overrides = dict(base_image_overrides or {})
    for key in overrides:
        name, _, version = key.partition(":")
        if name not in runtimes:
            raise InvalidRequest(f"base image override {key!r}: no runtime named {name!r}")
        if runtimes[name].unavailable:
            raise InvalidRequest(
                f"base image override {key!r}: runtime {name} cannot be built here"
                f" ({runtimes[name].unavailable}): it has no template"
            )
        if version and not _EXACT.fullmatch(version):
            raise InvalidRequest(f"base image override {key!r}: {version!r} is not x.y.z")
    for name, runtime in list(runtimes.items()):
        if runtime.unavailable:
            continue
        versions = dict(runtime.versions)
        if name in overrides:
            versions = dict.fromkeys(versions, overrides[name])
        for key, image in overrides.items():
            key_name, _, version = key.partition(":")
            if key_name == name and version:
                versions[version] = image
        runtimes[name] = dataclasses.replace(runtime, versions=versions)
    return runtimes


def get_runtime(runtimes: Mapping[str, Runtime], name: str) -> Runtime:
    """The runtime called ``name`` (apprunner.yaml spelling), or RuntimeUnavailable
    (no such runtime, or one this host cannot build, saying why)."""
    available = ", ".join(sorted(n for n, r in runtimes.items() if not r.unavailable)) or "none"
    runtime = runtimes.get(name)
    if runtime is None:
        raise RuntimeUnavailable(
            f"runtime {name} is not available on this host; available: {available}"
        )
    if runtime.unavailable:
        raise RuntimeUnavailable(
            f"runtime {name} is an App Runner runtime this host cannot build:"
            f" {runtime.unavailable}; available: {available}"
        )
    return runtime


def _ships(runtime: Runtime) -> str:
    return f"; on this host it is {runtime.provides}" if runtime.provides else ""


def resolve_version(runtime: Runtime, wanted: str | None) -> tuple[str, str]:
    """(exact version, base image) for run.runtime-version, locking as the guide says.

    None: the newest version. "3": newest 3.x.y (major locked). "3.11": newest 3.11.y
    (major and minor locked, patches float). "3.11.2": exactly that version. A line key
    ("8.2") answers "8" and "8.2", never a patch: its patch level is not this host's to fix.
    """
    ordered = sorted(runtime.versions, key=_version_key, reverse=True)
    available = ", ".join(ordered)
    if wanted is None:
        return ordered[0], runtime.versions[ordered[0]]
    wanted = str(wanted).strip()
    if not _WANTED.fullmatch(wanted):
        raise RuntimeUnavailable(
            f"runtime-version {wanted!r} is not major[.minor[.patch]]; "
            f"{runtime.name} versions available: {available}"
        )
    prefix = _version_key(wanted)
    for version in ordered:
        key = _version_key(version)
        if len(prefix) <= len(key) and key[: len(prefix)] == prefix:
            return version, runtime.versions[version]
    lines = [v for v in ordered if not _EXACT.fullmatch(v)]
    if len(prefix) == 3 and any(_version_key(v) == prefix[:2] for v in lines):
        line = wanted.rsplit(".", 1)[0]
        raise RuntimeUnavailable(
            f"runtime-version {wanted}: runtime {runtime.name} follows the {line} line's patch"
            f" releases{_ships(runtime)}, so a patch level cannot be locked; write {line}"
        )
    raise RuntimeUnavailable(
        f"runtime-version {wanted}: runtime {runtime.name} has no such version"
        f"{_ships(runtime)}; versions available: {available}"
    )


# --- package.json engines.node ---------------------------------------------------------


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` (x.y.z) is in the npm-style range ``spec``.

    Supports ``||``, space-joined comparator sets, ``a - b``, ``^``, ``~``, ``>=``,
    ``>``, ``<=``, ``<``, ``=``, exact and partial versions, and ``x``/``*`` wildcards.
    Pre-release parts are dropped (semver's loose reading). Raises ValueError for a
    range it cannot read.
    """
    have = semver.floor(version, loose=True)
    # One alternative at a time: once one matches, the rest are not read (nor refused).
    return any(semver.Range.parse(part, loose=True).contains(have) for part in spec.split("||"))


def _engines_node(package_json: Mapping[str, Any]) -> str | None:
    engines = package_json.get("engines")
    if not isinstance(engines, Mapping):
        return None
    node = engines.get("node")
    return node if isinstance(node, str) else None


def check_engines(package_json: Mapping[str, Any], version: str) -> None:
    """Fail (EnginesConflict) when package.json's engines.node excludes ``version``.

    The guide (Node.js runtime, package.json tips): runtime-version in apprunner.yaml
    overrides package.json, and a conflict between the two fails the build.
    """
    spec = _engines_node(package_json)
    if spec is None:
        return
    try:
        ok = satisfies(version, spec)
    except ValueError as exc:
        raise EnginesConflict(
            f"package.json engines.node {spec!r} is not a valid range: {exc}"
        ) from exc
    if not ok:
        raise EnginesConflict(
            f"package.json engines.node {spec!r} conflicts with the runtime version {version}"
        )


def resolve_for_source(
    runtime: Runtime, wanted: str | None, package_json: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """(exact version, base image) given runtime-version and, for Node.js, package.json.

    runtime-version set: it decides, and engines.node must agree (check_engines). Not set:
    engines.node picks the newest version it accepts, and fails if it accepts none.
    """
    if wanted is not None or package_json is None or _engines_node(package_json) is None:
        version, image = resolve_version(runtime, wanted)
        if package_json is not None:
            check_engines(package_json, version)
        return version, image
    spec = _engines_node(package_json)
    ordered = sorted(runtime.versions, key=_version_key, reverse=True)
    for version in ordered:
        try:
            if satisfies(version, spec or ""):
                return version, runtime.versions[version]
        except ValueError as exc:
            raise EnginesConflict(
                f"package.json engines.node {spec!r} is not a valid range: {exc}"
            ) from exc
    raise EnginesConflict(
        f"package.json engines.node {spec!r} accepts none of the {runtime.name} versions "
        f"on this host: {', '.join(ordered)}"
    )


# --- manifests that point back into the source tree ------------------------------------

_NPM_SOURCE_SCRIPTS = (
    "preinstall",
    "install",
    "postinstall",
    "prepare",
    "preprepare",
    "postprepare",
    "prepublish",
)
_LOCAL_SPEC = re.compile(r"(file:|link:|\.{1,2}/|/|~/)")
_REQ_FILE_OPTIONS = re.compile(r"(-r|--requirement|-c|--constraint|-e|--editable)\b")
_REQ_FIND_LINKS = re.compile(r"(-f|--find-links)[ =]?(\S+)")
_ARCHIVE = re.compile(r"\S+\.(whl|tar\.gz|tgz|zip)$")


def _requirements_reason(text: str) -> str | None:
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        links = _REQ_FIND_LINKS.match(line)
        local = (
            _REQ_FILE_OPTIONS.match(line)
            or (links and "://" not in links[2])
            or line.startswith((".", "/", "~"))
            or "file:" in line
            or ("/" in line and "://" not in line)
            or _ARCHIVE.fullmatch(line)
        )
        if local:
            return f"requirements.txt line {number} ({line!r}) refers to a file in the source"
    return None


def _package_json_reason(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None  # the install reports it, with or without the source
    if not isinstance(data, dict):
        return None
    if data.get("workspaces"):
        return "package.json declares workspaces"
    scripts = data.get("scripts")
    if isinstance(scripts, dict):
        for name in _NPM_SOURCE_SCRIPTS:
            if name in scripts:
                return f"package.json has a {name} script, which runs during the install"
    for section in ("dependencies", "devDependencies", "optionalDependencies"):
        deps = data.get(section)
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                if isinstance(spec, str) and _LOCAL_SPEC.match(spec):
                    return f"package.json {section}.{dep} is a local path ({spec})"
    return None


def _pipfile_lock_reason(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    for section in ("default", "develop"):
        for name, entry in (data.get(section) or {}).items():
            if isinstance(entry, dict) and ("path" in entry or entry.get("editable")):
                return f"Pipfile.lock {section}.{name} is a local path"
    return None


def dependencies_need_source(manifests: Mapping[str, str]) -> str | None:
    """Why the dependency install must see the whole source (or None if it needs only
    ``manifests``, name -> text). Then the builder puts it after the source copy."""
    checks = {
        "requirements.txt": _requirements_reason,
        "package.json": _package_json_reason,
        "Pipfile.lock": _pipfile_lock_reason,
        "Pipfile": lambda text: (
            "Pipfile has a local path dependency"
            if re.search(r"^\s*[^#\n]*\b(path|editable)\s*=", text, re.M)
            else None
        ),
    }
    for name, text in manifests.items():
        check = checks.get(name)
        reason = check(text) if check else None
        if reason:
            return reason
    return None
