"""Wiring: one Agent holds the store, the rules, the worker and the adapters, and serves
the HTTP API. Everything is built from one Settings object."""

from __future__ import annotations

import logging

import uvicorn

from . import keys
from .backends.docker_engine import DockerEngine
from .build.builder import Builder
from .build.runtimes import load_runtimes
from .config import Settings
from .observe.logs import LogStore
from .router import Router
from .services import Services
from .sources.git import GitSource
from .sources.images import ImageResolver
from .sources.registry import RegistryClient
from .store import Store
from .vault import Vault
from .worker import Worker

log = logging.getLogger("slipway")


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.db_path)
        self.vault = Vault(settings.data_dir / "vault.key")
        self.router = Router(settings.caddy_admin, settings.http_port)
        self.backend = DockerEngine(instance_host=settings.instance_host)
        self.resolve = ImageResolver(
            RegistryClient(settings.insecure_registries), self._registry_credentials
        )
        self.services = Services(self.store, settings, self.vault, self.resolve)
        self.logs = LogStore(settings.data_dir / "logs")
        self.builder = Builder(
            runtimes=load_runtimes(base_image_overrides=settings.base_images),
            timeout=settings.build_timeout,
            keep_images=settings.keep_images,
            work_dir=settings.data_dir / "builds",
        )
        self.worker = Worker(
            self.store,
            settings,
            self.services,
            self.backend,
            self.router,
            self.resolve,
            git=GitSource(),
            builder=self.builder,
            logs=self.logs,
        )
        self.services.wake = self.worker.wake
        self.services.ensure_default_auto_scaling()

    def _registry_credentials(self, host: str) -> tuple[str, str] | None:
        return self.services.registry_credentials(host)

    def lookup_secret(self, key_id: str) -> str | None:
        return keys.lookup_secret(self.store, self.vault, key_id)

    def create_access_key(self, description: str = "") -> tuple[str, str]:
        return keys.create_access_key(self.store, self.vault, description)

    def ensure_root_key(self) -> None:
        """On first start, make a root key and write it where the CLI and AWS tools look."""
        if self.store.count_access_keys():
            return
        key_id, secret = self.create_access_key("root")
        keys.write_credentials(self.settings.credentials_file, key_id, secret, self.settings.region)
        log.info("root access key written to %s", self.settings.credentials_file)

    def serve(self) -> None:
        from .api.app import create_app

        self.ensure_root_key()
        self.worker.start()
        log.info(
            "slipway listening on %s; services at http://<name>.%s:%s",
            self.settings.endpoint,
            self.settings.base_domain,
            self.settings.http_port,
        )
        try:
            uvicorn.run(
                create_app(self),
                host=self.settings.listen_host,
                port=self.settings.listen_port,
                log_level="warning",
            )
        finally:
            self.worker.stop()
