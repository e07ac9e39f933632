"""A task's route table: which versions get its new jobs (a value the release store keeps).

Pure data with its transitions; choosing a version for a job is ``tornado_core.routing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType


@dataclass(frozen=True, kw_only=True)
class RouteTable:
    """How new jobs of one task are routed.

    Attributes:
        task: Task name.
        current: The version that gets every job not ramped or pinned elsewhere.
        ramping: A version receiving ``ramp_percent`` % of new jobs, or ``None``.
        ramp_percent: 0..100; ignored without ``ramping``.
        pins: Tenant -> version; a pinned tenant's jobs all go there.
        revision: Bumped by the store at every change (for caches and logs).
    """

    task: str
    current: str
    ramping: str | None = None
    ramp_percent: int = 0
    pins: Mapping[str, str] = field(default_factory=dict)
    revision: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.ramp_percent <= 100:
            raise ValueError(f"ramp percent must be within 0..100, not {self.ramp_percent}")
        if self.ramping == self.current:
            raise ValueError(f"version {self.current} cannot be current and ramping at once")
        object.__setattr__(self, "pins", MappingProxyType(dict(self.pins)))

    def routed_versions(self) -> set[str]:
        """Every version that can receive new jobs (current, ramping, pinned)."""
        versions = {self.current, *self.pins.values()}
        if self.ramping is not None and self.ramp_percent > 0:
            versions.add(self.ramping)
        return versions

    def role_of(self, version: str) -> str:
        """How ``version`` takes jobs: ``current``, ``ramping 10%``, ``pinned: a, b`` or ``""``."""
        roles = []
        if version == self.current:
            roles.append("current")
        if version == self.ramping:
            roles.append(f"ramping {self.ramp_percent}%")
        tenants = sorted(t for t, v in self.pins.items() if v == version)
        if tenants:
            roles.append("pinned: " + ", ".join(tenants))
        return "; ".join(roles)

    def promoted(self, version: str) -> RouteTable:
        """``version`` becomes current; the ramp ends; its own pins become redundant."""
        pins = {t: v for t, v in self.pins.items() if v != version}
        return replace(self, current=version, ramping=None, ramp_percent=0, pins=pins)

    def ramped(self, version: str | None, percent: int) -> RouteTable:
        """``version`` gets ``percent`` % of new jobs (``None`` or 0 ends the ramp)."""
        if version is None or percent == 0:
            return replace(self, ramping=None, ramp_percent=0)
        return replace(self, ramping=version, ramp_percent=percent)

    def pinned(self, tenant: str, version: str | None) -> RouteTable:
        """Pin ``tenant`` to ``version`` (``None`` removes the pin)."""
        pins = dict(self.pins)
        if version is None:
            pins.pop(tenant, None)
        else:
            pins[tenant] = version
        return replace(self, pins=pins)

    def without(self, version: str) -> RouteTable:
        """Nothing routes to ``version`` any more except as current (ramp and pins dropped)."""
        pins = {t: v for t, v in self.pins.items() if v != version}
        ramping = None if self.ramping == version else self.ramping
        return replace(self, ramping=ramping, ramp_percent=self.ramp_percent if ramping else 0, pins=pins)
