"""What the system tests and the scenarios need of a running deployment, whoever runs it: local processes
(`LocalDeployment`) or a cluster (`KubeDeployment`). Roles are named as in the RoleBasedGroup."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Protocol


class Pod(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def restarts(self) -> int:
        """How often its containers were restarted, as `kubectl get pods` counts them."""
        ...


class Deployment(Protocol):
    @property
    def router_url(self) -> str: ...

    def running_pods(self, role: str) -> Sequence[Pod]:
        """The role's pods that are up (Ready on a cluster), in index order."""
        ...

    def pod_http_get(self, pod: str, port: int, path: str) -> str:
        """The body of `GET http://<pod>:<port><path>`, reached however the target allows."""
        ...

    def scale(self, role: str, replicas: int) -> object:
        """Set the role's replicas and return once the new pods are Ready."""
        ...

    def kill(self, role: str, index: int) -> Pod:
        """Kill pod `index` of the role at once, without a clean shutdown (a lost node)."""
        ...

    def helm_test(self) -> subprocess.CompletedProcess[str]:
        """Run the chart's `helm test` hook (one image request through the router Service)."""
        ...
