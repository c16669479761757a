"""The only package that speaks SQL: SQLite through sqlite-utils, WAL mode, versioned schema.

``Store`` is the one object the rest of the agent holds. Its queries are split by family
of tables: ``resources.py`` (services, operations, revisions and the other App Runner
resources, in and out as typed records from ``records.py`` or plain dicts),
``configurations.py`` (auto scaling and observability configurations),
``access.py`` (principals, their policies and access keys),
``observe.py`` (events, notification targets and deliveries, audit) and ``secrets.py``
(sealed secrets and their grants), ``vpc.py`` (VPC connectors and ingress
connections), ``traffic.py`` (traffic splits), ``metric_history.py`` (the metrics
history), ``console.py`` (console sessions), over the plumbing in ``base.py``; the
tables themselves are in ``schema.py``. JSON columns are decoded on the way out, and
what ``sealed.py`` names is sealed by the vault on the way in.
"""

from __future__ import annotations

from .access import AccessTables
from .base import StoreError, sealed_sample
from .configurations import ConfigurationTables
from .console import ConsoleSessionTables
from .metric_history import MetricHistoryTables
from .observe import ObserveTables
from .resources import ResourceTables
from .secrets import SecretTables
from .traffic import TrafficTables
from .vpc import VpcTables


class Store(
    ResourceTables,
    ConfigurationTables,
    ObserveTables,
    SecretTables,
    AccessTables,
    VpcTables,
    TrafficTables,
    MetricHistoryTables,
    ConsoleSessionTables,
):
    """Every table of the agent's database, behind one connection."""


__all__ = ["Store", "StoreError", "sealed_sample"]
