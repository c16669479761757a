"""The schema: versioned migrations, applied in order by ``Store`` when it opens a database.

Apart from the queries because a migration is written once and never changed again,
while the queries change with every feature; here the tables can be read whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils

from .sealed import SEALED_TEXT, Sealer, seal_maps

# Columns that hold JSON: encoded on the way in, decoded on the way out.
JSON_COLUMNS = {
    "spec",
    "params",
    "previous",
    "detail",
    "body",
    "pattern",
    "validation",
    "document",
    "subnets",
    "security_groups",
    "split",
}


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["services"].create(
        {
            "id": str,
            "name": str,
            "arn": str,
            "hostname": str,
            "status": str,
            "spec": str,
            "live_deployment_id": str,
            "live_revision": str,
            "latest_revision": str,
            "created_at": float,
            "updated_at": float,
            "deleted_at": float,
        },
        pk="id",
    )
    db["services"].create_index(["arn"], unique=True)
    db["operations"].create(
        {
            "id": str,
            "seq": int,
            "service_id": str,
            "target_arn": str,
            "type": str,
            "status": str,
            "params": str,
            "previous": str,
            "message": str,
            "created_at": float,
            "started_at": float,
            "ended_at": float,
            "updated_at": float,
        },
        pk="id",
    )
    db["operations"].create_index(["service_id", "seq"])
    db["auto_scaling_configurations"].create(
        {
            "arn": str,
            "name": str,
            "revision": int,
            "status": str,
            "max_concurrency": int,
            "min_size": int,
            "max_size": int,
            "is_default": int,
            "created_at": float,
            "deleted_at": float,
        },
        pk="arn",
    )
    db["auto_scaling_configurations"].create_index(["name", "revision"])
    db["tags"].create({"resource_arn": str, "key": str, "value": str}, pk=("resource_arn", "key"))
    db["access_keys"].create(
        {"id": str, "secret": str, "created_at": float, "description": str}, pk="id"
    )
    db["revisions"].create(
        {
            "id": int,
            "service_id": str,
            "revision": str,
            "image": str,
            "operation_id": str,
            "detail": str,
            "created_at": float,
        },
        pk="id",
    )
    db["revisions"].create_index(["service_id", "revision"])
    db["registry_credentials"].create(
        {"host": str, "username": str, "password": str, "updated_at": float}, pk="host"
    )


def _m2_connections(db: sqlite_utils.Database) -> None:
    db["connections"].create(
        {
            "arn": str,
            "name": str,
            "provider": str,
            "status": str,
            "credentials": str,  # sealed JSON: a token, or a GitHub App's id and key
            "webhook_secret": str,  # sealed
            "account": str,
            "created_at": float,
        },
        pk="arn",
    )
    db["connections"].create_index(["name"], unique=True)
    db["deliveries"].create({"id": str, "received_at": float}, pk="id")
    db["services"].add_column("latest_ref", str)


def _m3_observe(db: sqlite_utils.Database) -> None:
    """Events in EventBridge shape, notification targets and their deliveries, and the
    audit trail of API calls."""
    # AUTOINCREMENT: ids never come back after pruning, so "after id N" stays a cursor.
    db.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, service_id TEXT,"
        " time FLOAT, detail_type TEXT, body TEXT)"
    )
    db["events"].create_index(["service_id", "id"])
    db["events"].create_index(["time"])
    db["notify_targets"].create(
        {
            "id": str,
            "url": str,
            "pattern": str,  # JSON: an EventBridge event pattern
            "secret": str,  # sealed
            "format": str,  # json | slack
            "created_at": float,
            "source": str,  # config | api
        },
        pk="id",
    )
    db["deliveries_out"].create(
        {
            "target_id": str,
            "event_id": int,
            "service_id": str,  # the event's, so each (target, service) chain is one index scan
            "attempts": int,
            "next_attempt_at": float,
            "last_error": str,
            "status": str,  # pending | delivered | failed
            "created_at": float,
            "updated_at": float,
        },
        pk=("target_id", "event_id"),
    )
    db["deliveries_out"].create_index(["status", "target_id", "service_id", "event_id"])
    db.execute(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time FLOAT,"
        " access_key_id TEXT, source_ip TEXT, user_agent TEXT, operation TEXT,"
        " params TEXT, outcome TEXT)"  # params: JSON, already redacted
    )
    db["audit"].create_index(["time"])


def _m4_custom_domains(db: sqlite_utils.Database) -> None:
    """Custom domains of services; ``validation`` maps each DNS name to its record status."""
    db["custom_domains"].create(
        {
            "id": str,
            "service_id": str,
            "domain_name": str,
            "enable_www": int,
            "status": str,
            "validation": str,  # JSON: {"example.com": "SUCCESS", ...}
            "reason": str,  # why it is not ACTIVE yet, as last noted in the events stream
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
    )
    db["custom_domains"].create_index(["service_id", "domain_name"], unique=True)
    db["custom_domains"].create_index(["domain_name"])


def _m5_secrets(db: sqlite_utils.Database) -> None:
    """Secrets bound to services: each value sealed by the vault, and the names of the
    services that may read it (a grant can name a service before it exists)."""
    db["secrets"].create(
        {"name": str, "value": str, "created_at": float, "updated_at": float}, pk="name"
    )
    db["secret_grants"].create(
        {"secret": str, "service": str, "created_at": float}, pk=("secret", "service")
    )


def _m6_operation_interruptions(db: sqlite_utils.Database) -> None:
    """How many agent restarts cut an operation off: past operation_max_interruptions it
    ends FAILED instead of running again (an operation that kills the agent)."""
    db["operations"].add_column("interruptions", int, not_null_default=0)


@dataclass(frozen=True)
class WithVault:
    """A migration that needs the vault besides the database (to seal what was clear)."""

    step: Callable[[sqlite_utils.Database, Sealer], None]


def _m7_seal_values(db: sqlite_utils.Database, vault: Sealer) -> None:
    """Seal what earlier versions kept in clear (``sealed.py``): environment maps in
    specs, operations and revisions, notification target URLs, registry usernames."""
    for table, pk, columns in (
        ("services", "id", ("spec",)),
        ("operations", "id", ("params", "previous")),
        ("revisions", "id", ("detail",)),
    ):
        for row in db.query(f"SELECT {pk}, {', '.join(columns)} FROM {table}"):
            sealed = {
                c: json.dumps(seal_maps(json.loads(row[c]), vault))
                for c in columns
                if row[c] is not None
            }
            if sealed:
                db[table].update(row[pk], sealed)
    for table, column in SEALED_TEXT:
        pk = db[table].pks[0]
        for row in db.query(f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL"):
            db[table].update(row[pk], {column: vault.seal(row[column])})


def _m8_audit_request_id(db: sqlite_utils.Database) -> None:
    """The ``x-amzn-RequestId`` the API answered a call with, so a client's error report
    finds its audit row."""
    db["audit"].add_column("request_id", str)


def _m9_principals(db: sqlite_utils.Database) -> None:
    """Access keys belong to named principals, each with IAM-style policies; a key can be
    disabled, can expire, and remembers when it was last used. The keys that exist are
    adopted by ``root``, an administrator (the document is written out: a migration
    never changes, even if the ready-made policy does)."""
    db["principals"].create({"name": str, "created_at": float}, pk="name")
    db["principal_policies"].create(
        {"principal": str, "name": str, "document": str, "attached_at": float},
        pk=("principal", "name"),
    )
    db["access_keys"].add_column("principal", str, not_null_default="root")
    db["access_keys"].add_column("status", str, not_null_default="Active")
    db["access_keys"].add_column("expires_at", float)
    db["access_keys"].add_column("last_used_at", float)
    db["principals"].insert({"name": "root", "created_at": 0.0})
    admin = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    db["principal_policies"].insert(
        {
            "principal": "root",
            "name": "administrator",
            "document": json.dumps(admin),
            "attached_at": 0.0,
        }
    )


def _m10_observability(db: sqlite_utils.Database) -> None:
    """Observability configurations (issue 17): revisioned like auto scaling ones; a
    revision with ``trace_vendor`` turns tracing on for the services that use it."""
    db["observability_configurations"].create(
        {
            "arn": str,
            "name": str,
            "revision": int,
            "status": str,
            "trace_vendor": str,
            "created_at": float,
            "deleted_at": float,
        },
        pk="arn",
    )
    db["observability_configurations"].create_index(["name", "revision"])


def _m11_vpc(db: sqlite_utils.Database) -> None:
    """VPC connectors (the Docker networks a service's instances join, by name and
    revision) and VPC ingress connections (where a private service answers)."""
    db["vpc_connectors"].create(
        {
            "arn": str,
            "name": str,
            "revision": int,
            "status": str,  # ACTIVE | INACTIVE
            "subnets": str,  # JSON: Docker network names
            "security_groups": str,  # JSON: recorded, not enforced
            "created_at": float,
            "deleted_at": float,
        },
        pk="arn",
    )
    db["vpc_connectors"].create_index(["name", "revision"])
    db["vpc_ingress_connections"].create(
        {
            "arn": str,
            "name": str,
            "service_arn": str,
            "status": str,
            "vpc_id": str,
            "vpc_endpoint_id": str,
            "domain_name": str,
            "created_at": float,
            "deleted_at": float,
        },
        pk="arn",
    )
    db["vpc_ingress_connections"].create_index(["service_arn"])


def _m12_idle(db: sqlite_utils.Database) -> None:
    """Services scaled to zero (``slipway:idle-timeout``), so an agent that restarts
    leaves them idle instead of starting them all at once."""
    db["idle_services"].create({"service_id": str, "since": float}, pk="service_id")


def _m13_traffic(db: sqlite_utils.Database) -> None:
    """Traffic splits between a service's revisions and its revision tags
    (``traffic.Split`` as JSON), one row per service that has one."""
    db["traffic"].create({"service_id": str, "split": str, "updated_at": float}, pk="service_id")


def _m14_metric_history(db: sqlite_utils.Database) -> None:
    """The metrics history (``observe/history.py``): each service's figures per minute
    for a day, per hour after that, so the 24 h and 7 d charts survive restarts."""
    db["metric_history"].create(
        {"service": str, "start": int, "span": int, "figures": str},
        pk=("service", "start", "span"),
    )
    db["metric_history"].create_index(["start"])


def _m15_console_sessions(db: sqlite_utils.Database) -> None:
    """Console sessions (``console/sessions.py``) by a digest of their cookie, so an
    agent restart keeps people signed in and a sign-out still ends a session."""
    db["console_sessions"].create(
        {"digest": str, "key_id": str, "csrf": str, "expires_at": float}, pk="digest"
    )
    db["console_sessions"].create_index(["expires_at"])


def _m16_console_links(db: sqlite_utils.Database) -> None:
    """One-time console sign-in links by a digest of their token, so an agent restart
    leaves an unused link working; and no CSRF token kept beside a session: it is
    derived from the cookie, which is never kept (``console/sessions.py``)."""
    db["console_links"].create({"digest": str, "key_id": str, "expires_at": float}, pk="digest")
    db["console_links"].create_index(["expires_at"])
    db["console_sessions"].transform(drop={"csrf"})


# Append only: each entry moves the schema one version forward.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None] | WithVault] = [
    _m1_initial,
    _m2_connections,
    _m3_observe,
    _m4_custom_domains,
    _m5_secrets,
    _m6_operation_interruptions,
    WithVault(_m7_seal_values),
    _m8_audit_request_id,
    _m9_principals,
    _m10_observability,
    _m11_vpc,
    _m12_idle,
    _m13_traffic,
    _m14_metric_history,
    _m15_console_sessions,
    _m16_console_links,
]
