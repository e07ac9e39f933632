"""How the ``lambda`` runtime deploys functions: the ``TORNADO_LAMBDA_*`` variables, checked up front."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tornado_core.errors import ConfigError

#: Lambda's range of function memory, in MiB.
MEMORY_RANGE = (128, 10_240)
ARCHITECTURES = ("x86_64", "arm64")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, kw_only=True)
class LambdaConfig:
    """Where and how the functions run (``TORNADO_LAMBDA_*`` variables, see :meth:`from_env`).

    Attributes:
        role_arn: The functions' execution role (one for every version).
        create_role: Create a least-privilege role per version instead (docs/iam.md); it is
            deleted with the function.
        memory: Function memory in MiB (CPU grows with it).
        function_prefix: Prefix of the function names; default: the queue prefix.
        architecture: ``x86_64`` or ``arm64`` (the wheels must match).
        subnets: Subnets of the functions (to reach RDS in a VPC).
        security_groups: Their security groups (required with subnets).
        poll_interval: Seconds between status polls.
        role_wait: Seconds to wait for a just-created role to become assumable by Lambda.
    """

    role_arn: str | None = None
    create_role: bool = False
    memory: int = 1024
    function_prefix: str | None = None
    architecture: str = "x86_64"
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    poll_interval: float = 2.0
    role_wait: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LambdaConfig:
        """Read ``TORNADO_LAMBDA_*`` variables; unset ones keep their defaults.

        ``ROLE_ARN``, ``CREATE_ROLE`` (true/false), ``MEMORY``, ``FUNCTION_PREFIX``,
        ``ARCHITECTURE``, ``SUBNETS`` and ``SECURITY_GROUPS`` (comma-separated).

        Raises:
            ConfigError: A malformed value.
        """
        memory = _var(env, "MEMORY")
        if memory and not memory.isdigit():
            raise ConfigError(f"TORNADO_LAMBDA_MEMORY must be MiB as a whole number, not {memory!r}")
        values: dict[str, Any] = {
            "role_arn": _var(env, "ROLE_ARN"),
            "create_role": _var(env, "CREATE_ROLE").lower() in _TRUE,
            "memory": int(memory) if memory else None,
            "function_prefix": _var(env, "FUNCTION_PREFIX"),
            "architecture": _var(env, "ARCHITECTURE"),
            "subnets": _list(env, "SUBNETS"),
            "security_groups": _list(env, "SECURITY_GROUPS"),
        }
        return cls(**{key: value for key, value in values.items() if value})

    def check(self) -> None:
        """Refuse a configuration that cannot deploy, before anything is created.

        Raises:
            ConfigError: No role and no ``create_role``, memory out of range, an unknown
                architecture, subnets without security groups (or the reverse).
        """
        if not self.role_arn and not self.create_role:
            raise ConfigError(
                "the lambda runtime needs the functions' execution role: set TORNADO_LAMBDA_ROLE_ARN, or "
                "TORNADO_LAMBDA_CREATE_ROLE=true for a least-privilege role per version (docs/iam.md)"
            )
        low, high = MEMORY_RANGE
        if not low <= self.memory <= high:
            raise ConfigError(f"TORNADO_LAMBDA_MEMORY must be {low} to {high} MiB, not {self.memory}")
        if self.architecture not in ARCHITECTURES:
            choices = " or ".join(ARCHITECTURES)
            raise ConfigError(f"TORNADO_LAMBDA_ARCHITECTURE must be {choices}, not {self.architecture!r}")
        if bool(self.subnets) != bool(self.security_groups):
            raise ConfigError("TORNADO_LAMBDA_SUBNETS and TORNADO_LAMBDA_SECURITY_GROUPS go together")


def _var(env: Mapping[str, str], name: str) -> str:
    return env.get(f"TORNADO_LAMBDA_{name}", "").strip()


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in _var(env, name).split(",") if part.strip())
