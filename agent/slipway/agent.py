"""Wiring: one Agent builds the store, the rules, the operations and the adapters from
one Settings object and puts every periodic job on its one scheduler. The HTTP API
that serves it is started beside it by ``api/server.py``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from . import keys, runlock
from .access import Access
from .backends import Confinement, Instance
from .backends.build_box import BuildLimits
from .backends.docker_engine import DockerEngine
from .backends.docker_vpc import VpcNetworks
from .backends.fence import Isolation
from .backends.swarm import SwarmEngine
from .backends.swarm_fence import NodeFence
from .builds.builder import Builder
from .builds.runtimes import load_runtimes
from .config import Settings
from .connections import Connections
from .domains.rules import Domains, agent_address, domain_checker, tls_settings
from .errors import SlipwayError
from .feedback import GitHubFeedback
from .filemodes import StateAccess, secure_data_dir
from .idle import WakeLimits, waker_addresses
from .jobs import Jobs
from .observe.applogs import AppLogCollector
from .observe.audit import AuditTrail
from .observe.events import EventBus
from .observe.history import MetricsHistory
from .observe.logs import LogStore
from .observe.metrics import Metrics
from .observe.node_metrics import NODES_JOB, NodeMetrics
from .observe.notify import Notifier
from .observe.retention import Retention
from .observe.sampling import MetricsCollector
from .observe.traceexport import RouterSpans
from .observe.tracing import resource_attributes
from .operations.engine import Operations
from .operations.journal import Journal
from .operations.queue import OperationQueue
from .operations.wake import Idler
from .paging import Pager
from .previews import Previews
from .routing.haproxy import HaproxyRouter, caddy_http_socket, caddy_listen
from .routing.haproxyconfig import DataPlane
from .routing.ingress import Ingress
from .routing.router import Router
from .scaling import ClusterCapacity, Scaler
from .secretrefs import SecretLimits
from .service_secrets import Secrets
from .services import Services
from .sources.check import SourceCheck
from .sources.credentials import PullCredentials
from .sources.git import GitSource
from .sources.github import GitHub
from .sources.github_pulls import PullRequests
from .sources.images import ImageResolver
from .sources.registry import RegistryClient
from .store import Store, sealed_sample
from .triggers.poll import check_source
from .triggers.tracker import Tracker
from .vault import open_vault

log = logging.getLogger("slipway")


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs = Jobs()
        secure_data_dir(
            settings.data_dir,
            StateAccess(settings.state_group),
            route_table=settings.data_dir / "routes.json",
            access_log=settings.access_log_path,
        )
        self.vault = open_vault(
            settings.vault_key, settings.data_dir / "vault.key", sealed_sample(settings.db_path)
        )
        self.store = Store(settings.db_path, self.vault)
        self.access = Access(
            self.store,
            self.vault,
            settings.access_limits,
            region=settings.region,
            account=settings.account_id,
        )
        self.secrets = Secrets(
            self.store, self.vault, SecretLimits(max_bytes=settings.secret_max_bytes)
        )
        self.logs = LogStore(
            settings.data_dir / "logs",
            max_bytes=settings.log_max_bytes,
            keep_files=settings.log_keep_files,
            max_age_days=settings.log_max_age_days,
        )
        self.notifier = Notifier(
            self.store,
            self.vault,
            config_targets=settings.notify_targets,
            outbound=settings.outbound,
            max_age=settings.notify_max_age,
        )
        self.events = EventBus(
            self.store,
            region=settings.region,
            account=settings.account_id,
            on_event=self.notifier.wake,
        )
        self.journal = Journal(self.logs, self.events)
        self.queue = OperationQueue()
        self.audit = AuditTrail(self.store)
        self.retention = Retention(self.store, settings.history_max_age_days)
        access_log = settings.access_log_path
        if access_log is not None:
            access_log.parent.mkdir(parents=True, exist_ok=True)
        plane = settings.data_plane_limits
        plane.check()
        settings.quotas.check()
        haproxy_dir = settings.data_dir / "haproxy"
        caddy_http = (
            None if plane.kind == "caddy" else caddy_http_socket(settings.caddy_admin, haproxy_dir)
        )
        self.router = self._router(
            plane,
            haproxy_dir,
            caddy_http,
            Router(
                settings.caddy_admin,
                settings.http_port,
                access_log=access_log,
                tls=tls_settings(settings),
                custom_hosts=lambda: self.domains.custom_hosts(),
                route_dns=settings.route_dns,
                route_table=settings.data_dir / "routes.json",
                route_table_gid=StateAccess(settings.state_group).gid,
                ingress=Ingress(
                    hooks_domain=settings.public_hooks_domain,
                    api_domain=settings.api_domain,
                    upstream=agent_address(settings),
                ),
                http_listen=caddy_listen(caddy_http) if caddy_http else None,
                private_listen=settings.private_listen or None,
            ),
        )
        settings.edge_limits.check()  # the API applies them; a bad one stops the start
        settings.vpc_limits.check((settings.http_port, settings.https_port))
        isolation = Isolation(
            pool=settings.network_pool,
            fence=settings.fence,
            host_ports=(settings.http_port, settings.https_port),
            allow_ports=settings.fence_allow_ports,
        )
        self.networks = VpcNetworks(isolation)
        self.credentials = PullCredentials(self.store, self.vault)
        self.backend = self._backend(
            settings,
            Confinement(
                pids_limit=settings.instance_pids_limit,
                log_max_mb=settings.instance_log_max_mb,
                log_files=settings.instance_log_files,
                capabilities=settings.instance_capabilities,
                user=settings.instance_user,
            ),
            self.networks,
            self.credentials.for_host,
        )
        # The cluster view (``slipway nodes``), only when instances run on a cluster.
        self.nodes = self.backend.nodes if isinstance(self.backend, SwarmEngine) else None
        # The host fence on every node of the cluster (``backends/swarm_fence.py``).
        self.node_fence = (
            NodeFence(self.backend.client, self.backend.builds, isolation)
            if isinstance(self.backend, SwarmEngine)
            else None
        )
        self.applogs = AppLogCollector(self.logs, self.backend)
        self.metrics = Metrics(access_log)
        self.node_metrics = NodeMetrics(self.nodes) if self.nodes is not None else None
        if self.node_metrics is not None:
            self.metrics.register(self.node_metrics)
        self.router_spans = RouterSpans(access_log, settings.trace_settings, self._traced_hosts)
        self.metrics_collector = MetricsCollector(
            self.metrics,
            self._metric_hosts,
            self._metric_instances,
            self.backend,
            served=self.router.served,
            restarts=self._metric_restarts,
            interval=settings.metrics_interval,
            stats_interval=settings.metrics_stats_interval,
        )
        self.metrics_history = MetricsHistory(
            self.store,
            self.metrics,
            lambda: [s.name for s in self.store.list_services()],
            days=settings.metrics_history_days,
        )
        registry = RegistryClient(settings.insecure_registries)
        resolve = ImageResolver(registry, self.credentials.for_image)
        self.github = GitHub(settings.github_api_url, hosts=settings.github_hosts)
        self.connections = Connections(self.store, settings, self.vault, self.github)
        self.services = Services(
            self.store,
            settings,
            SourceCheck(resolve),
            self.queue,
            self.journal,
            connections=self.connections,
            pager=Pager(self.vault.derive("next-token")),
            network_check=self.backend.network_problems,
        )
        self.domains = Domains(
            self.store,
            settings,
            self.services,
            domain_checker(settings, self.router),
            note=self.journal.note,
            refresh=self.router.refresh,
        )
        # Polls keep one connection pool per host; checkouts take fresh connections.
        check = check_source(GitSource(reuse_connections=True), registry)
        self.tracker = Tracker(
            self.store,
            settings,
            self.services,
            self.connections,
            check,
            self.journal.note,
            self.credentials.for_image,
            scheduler=self.jobs.scheduler,
            trail=self.audit,
        )
        self.previews = Previews(
            self.store,
            settings,
            self.services,
            self.connections,
            PullRequests(settings.github_api_url, hosts=settings.github_hosts),
            self.secrets,
            self.journal.note,
        )
        builder = Builder(
            runtimes=load_runtimes(base_image_overrides=settings.base_images),
            timeout=settings.build_timeout,
            keep_images=settings.keep_images,
            work_dir=settings.data_dir / "builds",
            network=self.networks.for_builds,
            limits=BuildLimits(
                memory_mb=settings.build_memory_mb,
                cpus=settings.build_cpus,
                pids_limit=settings.build_pids_limit,
                disk_max_mb=settings.build_disk_max_mb,
                context_max_mb=settings.build_context_max_mb,
                image_max_mb=settings.image_max_mb,
            ),
        )
        self.operations = Operations(
            self.store,
            settings,
            self.services,
            self.backend,
            self.router,
            self.journal,
            self.queue,
            git=GitSource(limits=settings.git_limits),
            builder=builder,
            newest=self.tracker.newest,
            tokens=lambda spec: self.connections.token_for_repository(
                spec.source.connection_arn, spec.source.code.repository_url
            ),
            feedback=GitHubFeedback(
                self.github,
                self.connections,
                settings.github_hosts,
                lambda service: f"http://{settings.service_url(service.hostname)}",
                self.journal.note,
                transient=self.previews.is_preview,
            ),
            credentials=self.credentials,
            secrets=self.secrets,
            applogs=self.applogs if settings.app_logs else None,
        )
        self.splits = self.operations.splits  # traffic splits and revision tags
        self.scaler = Scaler(
            self.store,
            settings,
            self.services,
            self.router,
            self.backend,
            self.operations.reconciler,
            self.journal,
            capacity=ClusterCapacity(self.backend.rooms)
            if isinstance(self.backend, SwarmEngine)
            else None,
        )
        self.idler = Idler(
            self.store,
            settings,
            self.services,
            self.backend,
            self.router,
            self.operations.routes,
            self.operations.reconciler,
            self.journal,
            self.queue,
            self.operations.runner,
            waker=waker_addresses(settings.instance_network, settings.instance_port),
            limits=WakeLimits(hold_max=settings.wake_hold_max, timeout=settings.wake_timeout),
            requests=self.metrics.requests_total,
            hosts=self._metric_hosts,
            networks=None if isinstance(self.backend, SwarmEngine) else self.networks,
        )
        self.services.ensure_default_auto_scaling()

    @staticmethod
    def _backend(
        settings: Settings,
        confinement: Confinement,
        networks: VpcNetworks,
        registry_auth: Callable[[str], tuple[str, str] | None],
    ) -> DockerEngine | SwarmEngine:
        """The one place that picks the container engine (``backend``): this host's
        Docker Engine, or a Swarm cluster through its manager (``backends/swarm.py``)."""
        cluster = settings.cluster
        cluster.check()
        if cluster.backend == "swarm":
            return SwarmEngine(cluster, confinement, registry_auth=registry_auth)
        return DockerEngine(
            instance_network=settings.instance_network,
            instance_port=settings.instance_port,
            confinement=confinement,
            networks=networks,
        )

    @staticmethod
    def _router(
        plane: DataPlane, directory: Path, caddy_http: Path | None, caddy: Router
    ) -> Router | HaproxyRouter:
        """The one place that picks the data plane (``data_plane``): Caddy alone, or
        HAProxy on http_port (its files in ``directory``) in front of Caddy, whose HTTP
        server then listens on the socket ``caddy_http`` for the hosts that are not
        services'."""
        if caddy_http is None:
            return caddy
        return HaproxyRouter(
            caddy,
            directory=directory,
            caddy_http=caddy_http,
            backends=plane.haproxy_backends,
            binary=plane.haproxy_bin,
            latency_sample=plane.latency_sample,
            threads=plane.threads,
        )

    def _schedule(self) -> None:
        """Every periodic job of the agent, on its one scheduler."""
        s = self.settings
        self.operations.schedule(self.jobs)
        self.notifier.schedule(self.jobs)
        self.retention.schedule(self.jobs)
        self.metrics_collector.schedule(self.jobs)
        self.metrics_history.schedule(self.jobs)
        self.router_spans.schedule(self.jobs)
        self.jobs.every("previews", s.preview_interval, self.previews.sweep)
        self.jobs.every("scale", s.scale_interval, self.scaler.sample_once, first=s.scale_interval)
        self.idler.schedule(self.jobs)
        self.jobs.loop(
            "domains", s.domain_check_interval, self.domains.check_once, self.domains.wakeup
        )
        if isinstance(self.backend, SwarmEngine):  # lost nodes or quorum degrade /healthz
            self.jobs.every("cluster", s.reconcile_interval, self.backend.check_cluster)
        if self.node_fence is not None:  # a node without the fence degrades /healthz
            self.jobs.every("fence", s.reconcile_interval, self.node_fence.ensure)
        if self.node_metrics is not None:
            self.jobs.every(NODES_JOB, s.metrics_stats_interval, self.node_metrics.sample)

    def _metric_hosts(self) -> dict[str, str]:
        by_host = {
            self.settings.service_host(s.hostname).lower(): s.name
            for s in self.store.list_services()
        }
        # Requests to a custom domain count for its service (wildcards: not by name).
        for custom in self.domains.custom_hosts():
            if custom.target in by_host and not custom.name.startswith("*."):
                by_host[custom.name] = by_host[custom.target]
        return by_host

    def _traced_hosts(self) -> dict[str, dict[str, str]]:
        """Each host of a traced service (custom domains too) -> its resource attributes."""
        s = self.settings
        traced = {
            svc.name: resource_attributes(svc.name, svc.arn, s.region, s.account_id)
            for svc in self.store.list_services()
            if svc.spec.tracing
        }
        if not traced:
            return {}
        hosts = self._metric_hosts()
        return {host: traced[name] for host, name in hosts.items() if name in traced}

    def _metric_instances(self) -> list[tuple[str, str]]:
        return [(name, i.name) for name, i in self._live_instances()]

    def _metric_restarts(self) -> dict[tuple[str, str], int]:
        return {(name, i.name): i.restart_count for name, i in self._live_instances()}

    def _live_instances(self) -> list[tuple[str, Instance]]:
        """(service name, instance) of every running instance of a live deployment."""
        live = {s.id: s for s in self.store.list_services()}
        return [
            (live[i.service_id].name, i)
            for i in self.backend.list_instances()
            if i.running
            and i.service_id in live
            and i.deployment_id == live[i.service_id].live_deployment_id
        ]

    def ensure_root_key(self) -> None:
        """On first start, make a root key and write it where the CLI and AWS tools look."""
        created = self.access.ensure_root_key()
        if created is None:
            return
        key_id, secret = created
        keys.write_credentials(self.settings.credentials_file, key_id, secret, self.settings.region)
        log.info("root access key written to %s", self.settings.credentials_file)

    def start(self) -> None:
        """Everything but the HTTP server (``api/server.py`` runs both)."""
        self._run_lock = runlock.hold(self.settings.data_dir)
        self.ensure_root_key()
        self.secrets.import_files(self.settings.secrets_dir)
        self.backend.check_port()
        self.idler.start()
        self.networks.prepare()
        try:
            self.router.keep_route_dns()
        except SlipwayError as exc:  # said on /healthz by the reconcile pass, retried there
            log.warning("data plane: %s", exc.message)
        self._schedule()
        self.tracker.poller.start()
        self.jobs.start()

    def stop(self) -> None:
        self.idler.stop()
        self.tracker.poller.stop()
        self.jobs.stop()
        self.operations.stop()
        self.applogs.stop()
