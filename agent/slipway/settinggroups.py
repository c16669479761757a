"""The objects that groups of settings make (limits, quotas, the data plane, the cluster):
built from ``config.Settings``' fields, so each module takes its own group and not the
whole settings."""

from __future__ import annotations

from .access_limits import AccessLimits
from .backends.swarm_config import Cluster
from .edgelimits import EdgeLimits
from .health import ReconcilePace
from .observe.tracing import TraceSettings
from .outbound import OutboundPolicy
from .quotas import Quotas
from .routing.haproxyconfig import DataPlane
from .sources.git_limits import GitLimits
from .vpc.limits import VpcLimits


class SettingGroups:
    """Mixed into ``config.Settings``: one property per group."""

    @property
    def edge_limits(self) -> EdgeLimits:
        return EdgeLimits(
            max_request_bytes=self.max_request_bytes,
            max_hook_bytes=self.max_hook_bytes,
            max_json_depth=self.max_json_depth,
            auth_failure_burst=self.auth_failure_burst,
            auth_failures_per_minute=self.auth_failures_per_minute,
            hook_burst=self.hook_burst,
            hooks_per_minute=self.hooks_per_minute,
        )

    @property
    def quotas(self) -> Quotas:
        return Quotas(
            service=self.service_quota,
            connection=self.connection_quota,
            auto_scaling_name=self.auto_scaling_name_quota,
            auto_scaling_revision=self.auto_scaling_revision_quota,
        )

    @property
    def outbound(self) -> OutboundPolicy:
        """Where user-given URLs may point (``outbound_allow``)."""
        return OutboundPolicy(allow=self.outbound_allow)

    @property
    def reconcile_pace(self) -> ReconcilePace:
        return ReconcilePace(self.reconcile_interval, self.reconcile_full_interval)

    @property
    def data_plane_limits(self) -> DataPlane:
        """Which router carries plain HTTP, and HAProxy's pool (``data_plane``)."""
        return DataPlane(
            kind=self.data_plane,
            haproxy_backends=self.haproxy_backends,
            haproxy_bin=self.haproxy_bin,
            latency_sample=self.haproxy_latency_sample,
            threads=self.haproxy_threads,
        )

    @property
    def trace_settings(self) -> TraceSettings:
        """Where traces go and the observability quotas (``trace_*``)."""
        return TraceSettings(
            endpoint=self.trace_endpoint,
            instance_endpoint=self.trace_instance_endpoint,
            interval=self.trace_export_interval,
            batch_spans=self.trace_batch_spans,
            name_quota=self.observability_name_quota,
            revision_quota=self.observability_revision_quota,
        )

    @property
    def vpc_limits(self) -> VpcLimits:
        """The private listener and the VPC quotas (``private_listen``, ``vpc_*``)."""
        return VpcLimits(
            private_listen=self.private_listen,
            connector_quota=self.vpc_connector_quota,
            ingress_quota=self.vpc_ingress_quota,
        )

    @property
    def cluster(self) -> Cluster:
        """Which engine runs instances, and the Swarm backend's settings (``backend``)."""
        return Cluster(
            backend=self.backend,
            docker_host=self.swarm_docker_host,
            ports=self.swarm_ports,
            constraints=self.swarm_constraints,
            registry=self.swarm_registry,
            node_hosts=self.swarm_node_docker_hosts,
        )

    @property
    def access_limits(self) -> AccessLimits:
        return AccessLimits(
            last_used_interval=self.key_last_used_interval,
            policy_max_bytes=self.policy_max_bytes,
        )

    @property
    def git_limits(self) -> GitLimits:
        return GitLimits(
            max_pack_mb=self.git_max_pack_mb,
            max_objects=self.git_max_objects,
            max_blob_mb=self.git_max_blob_mb,
            max_checkout_mb=self.git_max_checkout_mb,
            max_files=self.git_max_files,
            fetch_timeout=self.git_fetch_timeout,
        )
