"""A service's source is checked when it is created or updated, so a bad one is
refused before anything is stored: an image is resolved to the digest that would run;
a repository URL is checked for form (its branch is fetched by the deployment, which
fails with a reason if it cannot), and the runtime its API configuration names must be
one this host builds (an apprunner.yaml's is read by the deployment)."""

from __future__ import annotations

from collections.abc import Callable

from ..builds.config import RUNTIME_NAMES
from ..builds.runtimes import get_runtime, load_runtimes
from ..errors import InvalidRequest
from ..models import SourceConfig
from .git_names import parse_repository_url
from .registry import ImageRef


class SourceCheck:
    def __init__(self, resolve: Callable[[str, str], str]) -> None:
        self.resolve = resolve  # (identifier, repository type) -> digest

    def __call__(self, source: SourceConfig) -> str | None:
        """The image's digest; None for a repository. Raises RegistryError or
        InvalidRequest naming what is wrong."""
        if source.code:
            parse_repository_url(source.code.repository_url)
            runtime = (source.code.values or {}).get("Runtime")
            if runtime in RUNTIME_NAMES:
                try:
                    get_runtime(load_runtimes(), RUNTIME_NAMES[runtime])
                except InvalidRequest as exc:
                    raise InvalidRequest(
                        "SourceConfiguration.CodeRepository.CodeConfiguration"
                        f".CodeConfigurationValues.Runtime: {runtime}: {exc.message}"
                    ) from exc
            return None
        image = source.image
        ImageRef.parse(image.identifier)
        return self.resolve(image.identifier, image.repository_type)
