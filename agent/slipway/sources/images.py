"""Turn an ImageIdentifier into the digest that would run, with the right credentials."""

from __future__ import annotations

from collections.abc import Callable

from .registry import ImageRef, RegistryClient


class ImageResolver:
    """``credentials`` (identifier, repository type) says what to ask the registry with
    (``Services.pull_credentials``: ECR images with their host's, ECR_PUBLIC ones none)."""

    def __init__(
        self,
        registry: RegistryClient,
        credentials: Callable[[str, str], tuple[str, str] | None],
    ) -> None:
        self.registry = registry
        self.credentials = credentials

    def __call__(self, identifier: str, repository_type: str) -> str:
        creds = self.credentials(identifier, repository_type)
        return self.registry.resolve(ImageRef.parse(identifier), creds)
