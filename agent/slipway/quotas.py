"""Quotas of App Runner resources on this host, with the current guide's defaults.

App Runner's quotas per account and region: 30 services, 10 connections, 10 auto
scaling configuration names with 5 revisions each (the guide's table; App Runner does
not adjust the revisions one, a host may). A call past one answers
``ServiceQuotaExceededException``, naming the quota and its setting.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import InvalidRequest


@dataclass(frozen=True)
class Quotas:
    """Each field is a setting: ``service_quota``, ``connection_quota``,
    ``auto_scaling_name_quota``, ``auto_scaling_revision_quota``."""

    service: int = 30
    connection: int = 10
    auto_scaling_name: int = 10
    auto_scaling_revision: int = 5

    def check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 1:
                raise InvalidRequest(
                    f"{f.name}_quota must be at least 1 (0 would refuse every create), not {value}"
                )
