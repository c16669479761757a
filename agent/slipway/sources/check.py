"""A service's source is checked when it is created or updated, so a bad one is
refused before anything is stored: an image is resolved to the digest that would run;
a repository URL is checked for form (its branch is fetched by the deployment, which
fails with a reason if it cannot)."""

from __future__ import annotations

from collections.abc import Callable

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
            return None
        image = source.image
        ImageRef.parse(image.identifier)
        return self.resolve(image.identifier, image.repository_type)
