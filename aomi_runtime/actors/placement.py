"""Where session actors run: the Ray resources each asks for, and how long a caller waits for one to start.

On one machine a session actor asks for nothing (`num_cpus=0`) and starts at once. On an autoscaling cluster
each session asks for a custom resource (say `{"aomi_session": 1}`) that worker nodes declare as their session
slots, and an actor hosting up to N sessions reserves N of them: demand beyond the slots leaves actors pending,
which is what Ray's autoscaler adds nodes for, and nodes whose sessions were evicted fall idle and are removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..agent.errors import ConfigError

# A cloud node takes one to three minutes to boot, but a request should not hang that long: within this time
# the autoscaler has seen the pending actor and started a node, which later requests will find.
DEFAULT_PLACEMENT_SECONDS = 60.0

# Ray takes these through their own options (`num_cpus=`, ...), never in `resources=`.
_BUILT_IN = frozenset({"CPU", "GPU", "memory", "object_store_memory"})


@dataclass(frozen=True)
class SessionPlacement:
    """How many live sessions a session actor hosts (an App's `limits.sessions_per_actor` overrides it), the
    custom Ray resources each session asks for (none: anywhere, as on one machine; an actor reserves them for
    each of its places), and how long to wait for a new actor to be placed and started before giving up with
    `NoCapacity`."""

    resources: dict[str, float] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_PLACEMENT_SECONDS
    sessions_per_actor: int = 1

    def __post_init__(self) -> None:
        for name, amount in self.resources.items():
            if name in _BUILT_IN:
                raise ConfigError(
                    f"The session resource {name!r} is one of Ray's own ({', '.join(sorted(_BUILT_IN))}); "
                    "name a custom resource, such as 'aomi_session', that nodes declare as their session slots."
                )
            if not amount > 0:
                raise ConfigError(
                    f"The session resource {name!r} asks for {amount}; an actor must ask for more than 0."
                )
        if self.sessions_per_actor < 1:
            raise ConfigError(f"An actor hosts at least one session, got sessions_per_actor={self.sessions_per_actor}.")
        if not self.timeout_seconds > 0:
            raise ConfigError(f"The placement timeout must be positive, got {self.timeout_seconds}.")
