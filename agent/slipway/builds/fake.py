"""An in-memory image builder for unit tests: it records what it was asked to build."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SlipwayError
from . import CodeConfig


@dataclass
class Built:
    image: str
    runtime_version: str = "3.11.2"


class FakeBuilder:
    def __init__(self) -> None:
        self.configs: list[CodeConfig] = []
        self.fail: str | None = None  # a build fails with this message when set
        self.pruned: list[str] = []

    def build(
        self,
        service_name: str,
        source_root: Path,
        config: CodeConfig,
        revision: str,
        log: Callable[[str], None],
    ) -> Built:
        log("[Build] step 1")
        if self.fail:
            raise SlipwayError(self.fail)
        self.configs.append(config)
        return Built(image=f"slipway/{service_name}:{revision[:7]}")

    def prune(self, service_name: str, keep: Iterable[str] = ()) -> list[str]:
        self.pruned.append(service_name)
        return []

    def remove_all(self, service_name: str) -> None:
        self.pruned.append(f"all:{service_name}")
