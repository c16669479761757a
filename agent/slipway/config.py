"""Settings: embedded defaults, then the YAML file, then SLIPWAY_* environment variables.

One frozen object is built at start and passed down; nothing else reads the
environment for settings.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .access_limits import AccessLimits
from .backends import PUBLISHED_PORT, Confinement
from .backends.build_box import BuildLimits
from .backends.fence import Isolation
from .backends.swarm_config import Cluster
from .domains.ondemand import OnDemandLimits
from .edgelimits import EdgeLimits
from .errors import InvalidRequest
from .filemodes import StateAccess
from .health import ReconcilePace
from .observe.tracing import TraceSettings
from .quotas import Quotas
from .routing.admin import DEFAULT_ADMIN
from .routing.caddyconfig import TlsSettings
from .routing.haproxyconfig import DataPlane
from .secretrefs import SecretLimits
from .settinggroups import SettingGroups
from .settingvalues import coerce
from .sources.git_limits import GitLimits
from .vpc.limits import VpcLimits

log = logging.getLogger("slipway.config")

# Settings of earlier versions that are ignored now, and why.
RETIRED = {
    "instance_host": "instances publish on their own address from instance_network",
}


def _is_root() -> bool:
    return os.geteuid() == 0


def default_data_dir() -> Path:
    if _is_root():
        return Path("/var/lib/slipway")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    return Path(xdg) / "slipway"


def default_config_dir() -> Path:
    if _is_root():
        return Path("/etc/slipway")
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "slipway"


@dataclass(frozen=True)
class Settings(SettingGroups):
    data_dir: Path = field(default_factory=default_data_dir)
    config_dir: Path = field(default_factory=default_config_dir)
    listen_host: str = "127.0.0.1"
    listen_port: int = 8780
    base_domain: str = "localhost"
    http_port: int = 80
    # Caddy's admin API: a socket only root opens (unix//path), or http://host:port.
    caddy_admin: str = DEFAULT_ADMIN
    region: str = "us-east-1"
    account_id: str = "000000000000"
    service_quota: int = Quotas.service
    # Seconds between two passes of the reconcile loop (routes, dead instances).
    reconcile_interval: float = 2.0
    # Seconds an old instance, out of the route, has to finish in-flight requests.
    drain_seconds: int = 30
    # Seconds after a switch during which a crash of the new revision brings back the old.
    settle_seconds: float = 30.0
    # Seconds a new instance has to pass its health check before the deployment fails.
    health_deadline: float = 120.0
    # Seconds a new worker instance must run without exiting to count as started.
    worker_up_seconds: float = 5.0
    # Rollout steps (tag slipway:rollout): the new revision is rolled back when its 5xx
    # rate exceeds the old's by these points, or its p99 the old's times the ratio plus
    # the slack; judged once it answered min_requests in the step.
    rollout_max_5xx_points: float = 1.0
    rollout_max_p99_ratio: float = 2.0
    rollout_p99_slack_ms: int = 50
    rollout_min_requests: int = 20
    # What operations may do at once: steps (Docker calls between waits; a waiting
    # operation holds none), builds and image pulls. Sized for a 2-core host.
    operation_steps: int = 8
    build_concurrency: int = 2
    pull_concurrency: int = 4
    # Registries reached over plain HTTP besides loopback ones.
    insecure_registries: tuple[str, ...] = ()
    # Loopback network from which each instance gets its own address to publish its
    # port on; Caddy finds a route's instances by asking route_dns for its name.
    instance_network: str = "127.77.0.0/16"
    instance_port: int = PUBLISHED_PORT
    # Every instance's box besides its CPU and memory (``backends.Confinement``):
    # processes, Docker's log file, the capabilities kept (all others are dropped;
    # no-new-privileges always).
    instance_pids_limit: int = Confinement.pids_limit
    instance_log_max_mb: int = Confinement.log_max_mb
    instance_log_files: int = Confinement.log_files
    instance_capabilities: tuple[str, ...] = Confinement.capabilities
    # Network isolation (``backends.fence.Isolation``): each service's instances, and
    # the builds, on a bridge network of their own, a /24 of network_pool each; with
    # fence, iptables refuses them link-local (169.254.0.0/16), each other's networks and
    # the host's ports but Caddy's http_port and https_port and fence_allow_ports.
    network_pool: str = Isolation.pool
    fence: bool = Isolation.fence
    fence_allow_ports: tuple[str, ...] = Isolation.allow_ports
    # Secrets bound to services (``slipway secrets``): the largest value, in bytes
    # (``secretrefs.SecretLimits``; each value reaches an instance as one env variable).
    secret_max_bytes: int = SecretLimits.max_bytes
    # What one git fetch of a code service may cost (``sources.git_limits.GitLimits``):
    # MB of pack downloaded, objects in it, MB of one inflated object, MB and number of
    # files checked out, seconds for all of it. A fetch past one fails its operation.
    git_max_pack_mb: int = GitLimits.max_pack_mb
    git_max_objects: int = GitLimits.max_objects
    git_max_blob_mb: int = GitLimits.max_blob_mb
    git_max_checkout_mb: int = GitLimits.max_checkout_mb
    git_max_files: int = GitLimits.max_files
    git_fetch_timeout: float = GitLimits.fetch_timeout
    # An operation cut off by agent restarts this many times ends FAILED ("interrupted N
    # times") instead of running again: one that kills the agent cannot crash-loop it.
    operation_max_interruptions: int = 2
    # The data plane (issue 15, ``routing.haproxyconfig.DataPlane``): "caddy" routes
    # everything through Caddy; "haproxy" puts HAProxy on http_port for the services'
    # plain-HTTP routes (about a quarter of Caddy's CPU per request) and keeps Caddy for
    # TLS and every other host. With HAProxy, haproxy_backends services can be routed
    # at once (its backends are fixed at its start), run with the program haproxy_bin.
    data_plane: str = DataPlane.kind
    haproxy_backends: int = DataPlane.haproxy_backends
    haproxy_bin: str = DataPlane.haproxy_bin
    # Access keys and policies (``access_limits.AccessLimits``): seconds between two
    # writes of a key's last-used time (a busy key costs no write per request), and the
    # largest policy document, in bytes of JSON.
    key_last_used_interval: float = AccessLimits.last_used_interval
    policy_max_bytes: int = AccessLimits.policy_max_bytes
    # The local surface. URLs users give the agent to send to (notification targets)
    # may reach loopback, link-local and private addresses only when listed here:
    # networks, addresses or host names, each with an optional port ("10.0.0.0/8",
    # "127.0.0.1:9000", "localhost:9000"; ``outbound.OutboundPolicy``). Each wildcard
    # custom domain gets certificates on demand for at most this many hosts an hour
    # (``domains.ondemand.OnDemandLimits``), only for hosts that resolve here.
    outbound_allow: tuple[str, ...] = ()
    ondemand_certs_per_hour: int = OnDemandLimits.per_hour
    # HAProxy's request latencies (issue 15, ``routing.haproxytraffic``): one request in
    # haproxy_latency_sample is sent to the agent for the latency histogram (0: none);
    # request and status counts stay exact, from HAProxy's own counters.
    haproxy_latency_sample: int = DataPlane.latency_sample
    haproxy_threads: int = DataPlane.threads  # HAProxy's nbthread
    # The idle reconcile pass (issue 12, ``health.ReconcilePace``): between two full passes
    # at most this many seconds apart, a pass that finds the store, the containers and
    # the work under way as they were only runs the health checks that are due.
    reconcile_full_interval: float = ReconcilePace.full_interval
    # Issue 17, the wire and ACME. Quotas of App Runner resources (``quotas.Quotas``;
    # service_quota above is one too): connections, auto scaling configuration names,
    # and revisions of one name; defaults are the current guide's. The ACME challenges
    # a CA may validate custom domains by ("http-01" on http_port, "tls-alpn-01" on
    # https_port), and seconds between Caddy's certificate renewal passes (0: Caddy's
    # 10 minutes; ``routing.caddyconfig.TlsSettings``).
    connection_quota: int = Quotas.connection
    auto_scaling_name_quota: int = Quotas.auto_scaling_name
    auto_scaling_revision_quota: int = Quotas.auto_scaling_revision
    acme_challenges: tuple[str, ...] = TlsSettings.acme_challenges
    tls_renew_interval: float = TlsSettings.renew_interval
    # Tracing (issue 17, ``observe.tracing.TraceSettings``): services whose observability
    # configuration traces (Vendor AWSXRAY) send spans over OTLP/HTTP to the collector at
    # trace_endpoint: the router's span of each request, exported by the agent every
    # trace_export_interval seconds in requests of at most trace_batch_spans, and their
    # instances' own, through the OTEL_* environment, to trace_instance_endpoint (empty:
    # trace_endpoint; an instance's loopback is its own). At most
    # observability_name_quota names and observability_revision_quota revisions a name.
    trace_endpoint: str = TraceSettings.endpoint
    trace_instance_endpoint: str = TraceSettings.instance_endpoint
    trace_export_interval: float = TraceSettings.interval
    trace_batch_spans: int = TraceSettings.batch_spans
    observability_name_quota: int = TraceSettings.name_quota
    observability_revision_quota: int = TraceSettings.revision_quota
    # VPC connectors and private services (issue 17, ``vpc.limits.VpcLimits``):
    # private_listen is the IPv4 address:port where Caddy serves services with
    # IsPubliclyAccessible false, at their VPC ingress connection's DomainName ("": no
    # private listener, and private services are refused); at most vpc_connector_quota
    # active VPC connectors and vpc_ingress_quota VPC ingress connections.
    private_listen: str = VpcLimits.private_listen
    vpc_connector_quota: int = VpcLimits.connector_quota
    vpc_ingress_quota: int = VpcLimits.ingress_quota
    # The container engine (issue 16, ``backends.swarm_config.Cluster``): "docker" runs
    # instances on this host's Docker Engine; "swarm" runs each as a Swarm service on the
    # cluster whose manager answers at swarm_docker_host ("" = DOCKER_HOST, or the
    # default socket), published in host mode on a port of swarm_ports ("first-last",
    # unique in the cluster) of the node it lands on, placed by swarm_constraints
    # ("node.role==worker", "node.labels.zone==a", ...). Builds run on this host's daemon
    # and are pushed to swarm_registry (host[:port], reached by every node) to run.
    backend: str = Cluster.backend
    swarm_docker_host: str = Cluster.docker_host
    swarm_ports: str = Cluster.ports
    swarm_constraints: tuple[str, ...] = Cluster.constraints
    swarm_registry: str = Cluster.registry
    # "node=unix:///...|tcp://..." each: a node's own daemon, read for instance stats.
    swarm_node_docker_hosts: tuple[str, ...] = Cluster.node_hosts
    # State at rest (``filemodes.StateAccess``): data_dir and its files are owner-only
    # (0700/0600). state_group names an existing group whose members may pass data_dir
    # (0710), write Caddy's access log in <data_dir>/caddy (2770) and read routes.json
    # (0640): for a Caddy or route DNS responder that runs as another user.
    state_group: str = StateAccess.group
    # Resources and users (issue 13): the user instances run as ("" keeps the image's
    # own; images of managed runtimes switch to uid 10001 themselves; "10001:10001"
    # forces one on every instance); and each build's box (``build_box.BuildLimits``):
    # its steps' memory, cores, processes and disk writes, its context and its image.
    instance_user: str = Confinement.user
    build_memory_mb: int = BuildLimits.memory_mb
    build_cpus: float = BuildLimits.cpus
    build_pids_limit: int = BuildLimits.pids_limit
    build_disk_max_mb: int = BuildLimits.disk_max_mb
    build_context_max_mb: int = BuildLimits.context_max_mb
    image_max_mb: int = BuildLimits.image_max_mb
    # Public ingress and the limits at the edge (``routing.ingress.Ingress``,
    # ``edgelimits.EdgeLimits``): Caddy serves /hooks/github and /hooks/registry on
    # public_hooks_domain, and the API on api_domain, over HTTPS on https_port (empty: not
    # served), proxied to the agent on loopback. Bodies past max_request_bytes (API,
    # /slipway/v1) or max_hook_bytes (webhooks) and JSON nested past max_json_depth are
    # refused before any authentication work; per client address, failed authentications
    # and webhook deliveries are token buckets (burst, then so many per minute).
    public_hooks_domain: str = ""
    api_domain: str = ""
    max_request_bytes: int = EdgeLimits.max_request_bytes
    max_hook_bytes: int = EdgeLimits.max_hook_bytes
    max_json_depth: int = EdgeLimits.max_json_depth
    auth_failure_burst: int = EdgeLimits.auth_failure_burst
    auth_failures_per_minute: float = EdgeLimits.auth_failures_per_minute
    hook_burst: int = EdgeLimits.hook_burst
    hooks_per_minute: float = EdgeLimits.hooks_per_minute
    route_dns: str = "127.0.0.1:8753"
    # Console (console/sessions.py): seconds a sign-in lasts; seconds a console-link works.
    console_session_ttl: float = 28800.0
    console_link_ttl: float = 600.0
    # Seconds a build may take before it is stopped and the deployment fails.
    build_timeout: float = 1200.0
    # Built images kept per service for rollback.
    keep_images: int = 5
    # Base image per runtime ("python3" or "python3:3.11.2") instead of the runtime's
    # own, e.g. a registry mirror's python:3.11-slim.
    base_images: dict[str, str] = field(default_factory=dict)
    # Seconds between two looks at a tracked branch, tag or image (resource tag
    # slipway:poll-interval overrides it per service).
    poll_interval: float = 60.0
    # GitHub's REST API (GitHub Enterprise: https://HOST/api/v3).
    github_api_url: str = "https://api.github.com"
    # Hosts whose repositories get GitHub deployment feedback (GitHub Enterprise adds its own).
    github_hosts: tuple[str, ...] = ("github.com",)
    # Preview environments (``previews.py``): defaults of the slipway:previews tag's
    # ttl and max, and seconds between sweeps (polls, TTL, comments).
    preview_ttl: float = 3 * 86400.0
    preview_max: int = 5
    preview_interval: float = 30.0
    # Secret for GitHub webhooks of repositories whose services have no connection.
    github_webhook_secret: str = ""
    # Bearer token the registry's notifications must carry (/hooks/registry).
    registry_webhook_token: str = ""
    # Application log streams: rotated past this size, this many old files kept,
    # deleted after this many days.
    log_max_bytes: int = 10 * 1024 * 1024
    log_keep_files: int = 3
    log_max_age_days: float = 14.0
    # Follow every instance's stdout and stderr into its instance/<id> stream; false
    # leaves application output to docker alone (old log files are then not pruned).
    app_logs: bool = True
    # Caddy's JSON access log, read for request metrics: a path; "" means
    # <data_dir>/caddy/access.log; "off" means no request metrics.
    access_log: str = ""
    metrics_interval: float = 5.0
    metrics_stats_interval: float = 15.0
    # Days of per-service metrics kept (a day per minute, then per hour): 24 h / 7 d charts.
    metrics_history_days: float = 7.0
    # Auto scaling: Caddy's in-flight counts are sampled every scale_interval seconds;
    # a service scales out when every sample of scale_out_window seconds asks for more
    # instances, and in when none of scale_in_cooldown seconds asked for as many.
    scale_interval: float = 1.0
    scale_out_window: float = 2.0
    scale_in_cooldown: float = 60.0
    # Scale to zero (tag slipway:idle-timeout): requests held per waking service (more
    # get 503), and seconds one is held before 503.
    wake_hold_max: int = 100
    wake_timeout: float = 60.0
    # What all instances together may reserve (1024 CPU units = 1 vCPU; MB); 0 means
    # this host's cores and memory. Scaling out beyond it is refused.
    capacity_cpu: int = 0
    capacity_memory: int = 0
    # Stored events and audit rows older than this many days are deleted.
    history_max_age_days: float = 90.0
    # Event notification targets: [{url, pattern, secret?, format?: json|slack}].
    notify_targets: tuple[dict[str, Any], ...] = ()
    # Seconds an undelivered notification is retried before it is given up.
    notify_max_age: float = 86400.0
    # Custom domains: Caddy serves them over HTTPS on https_port with certificates from
    # tls_issuer: "acme" (acme_ca directory, acme_email; acme_ca_root trusts a private
    # ACME CA's root PEM) or "internal" (Caddy's own CA, for tests and closed networks).
    https_port: int = 443
    tls_issuer: str = "acme"
    acme_ca: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str = ""
    acme_ca_root: str = ""
    # DNS server ("host:port", "" = the system resolver) that validation asks, and the
    # addresses that count as this host ("" = the host's own interface addresses).
    dns_resolver: str = ""
    host_addresses: tuple[str, ...] = ()
    # Seconds between two validation passes; seconds a domain may stay unvalidated
    # before CREATE_FAILED (72 h, as ACM waits).
    domain_check_interval: float = 5.0
    domain_timeout: float = 72 * 3600.0

    @property
    def endpoint(self) -> str:
        return f"http://{self.listen_host}:{self.listen_port}"

    @property
    def webhook_base(self) -> str:
        """Where GitHub and registries send webhooks: the public HTTPS name when there is
        one, else the agent's own address."""
        if not self.public_hooks_domain:
            return self.endpoint
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.public_hooks_domain}{port}"

    @property
    def credentials_file(self) -> Path:
        return self.config_dir / "credentials"

    @property
    def vault_key(self) -> Path:
        """The key that seals values in the store: outside data_dir, so a copy of the
        data alone opens nothing (``vault.open_vault``)."""
        return self.config_dir / "vault.key"

    @property
    def access_log_path(self) -> Path | None:
        if self.access_log == "off":
            return None
        return Path(self.access_log) if self.access_log else self.data_dir / "caddy" / "access.log"

    @property
    def secrets_dir(self) -> Path:
        """Files imported as secrets at start, one per file named like the secret, with
        no grants (``service_secrets.Secrets.import_files``)."""
        return self.config_dir / "secrets"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "slipway.db"

    def service_host(self, hostname_label: str) -> str:
        return f"{hostname_label}.{self.base_domain}"

    def service_url(self, hostname_label: str) -> str:
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"{self.service_host(hostname_label)}{port}"


def settings_file(config_file: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """The settings file in use: the one given, else $SLIPWAY_CONFIG, else the default."""
    if config_file is not None:
        return config_file
    env_file = (os.environ if environ is None else environ).get("SLIPWAY_CONFIG")
    return Path(env_file) if env_file else default_config_dir() / "slipway.yaml"


def load_settings(
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings; later sources win: defaults < file < environment < overrides."""
    environ = dict(os.environ if environ is None else environ)
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    config_file = settings_file(config_file, environ)
    if config_file.exists():
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InvalidRequest(f"{config_file}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidRequest(f"{config_file}: expected a mapping of settings")
        for key, value in loaded.items():
            if key in RETIRED:
                log.warning("%s: setting %r is ignored: %s", config_file, key, RETIRED[key])
                continue
            if key not in known:
                raise InvalidRequest(f"{config_file}: unknown setting {key!r}")
            values[key] = value
    for name in known:
        env_value = environ.get(f"SLIPWAY_{name.upper()}")
        if env_value is not None:
            values[name] = env_value
    values.update({k: v for k, v in overrides.items() if v is not None})
    coerced = {k: coerce(k, known[k].type, v) for k, v in values.items()}
    return dataclasses.replace(Settings(), **coerced)
