"""Turn an ImageIdentifier into the digest that would run, with the right credentials."""

from __future__ import annotations

from collections.abc import Callable

from .registry import ImageRef, RegistryClient


class ImageResolver:
    """ECR images use the credentials the agent holds for their host (`slipway registries
    login`); ECR_PUBLIC images are pulled anonymously, as App Runner does."""

    def __init__(
        self,
        registry: RegistryClient,
        credentials_for: Callable[[str], tuple[str, str] | None],
    ) -> None:
        self.registry = registry
        self.credentials_for = credentials_for

    def __call__(self, identifier: str, repository_type: str) -> str:
        ref = ImageRef.parse(identifier)
        creds = self.credentials_for(ref.registry) if repository_type == "ECR" else None
        return self.registry.resolve(ref, creds)
