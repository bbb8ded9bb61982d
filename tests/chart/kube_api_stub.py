"""Just enough of a Kubernetes API server for `helm template --dry-run=server`: the version, discovery of
the RBG API group and GET of the RoleBasedGroups it holds. It lets the tests run the chart's `lookup` of the
live group (what `helm upgrade` does) without a cluster."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GROUP_VERSION = "workloads.x-k8s.io/v1alpha2"
# (group/version, kind, plural): what the stub says it serves (the chart's preflight checks some of them).
RESOURCES = [
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Pod", "pods"),
    ("v1", "Service", "services"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    (GROUP_VERSION, "RoleBasedGroup", "rolebasedgroups"),
    (GROUP_VERSION, "CoordinatedPolicy", "coordinatedpolicies"),
    (GROUP_VERSION, "RoleBasedGroupScalingAdapter", "rolebasedgroupscalingadapters"),
    ("monitoring.coreos.com/v1", "PodMonitor", "podmonitors"),
]


def _routes(groups: list[dict]) -> dict[str, dict]:
    routes: dict[str, dict] = {
        "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0"},
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    }
    api_groups = []
    for group_version in dict.fromkeys(gv for gv, _, _ in RESOURCES):
        resources = [
            {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": ["get"]}
            for gv, kind, plural in RESOURCES
            if gv == group_version
        ]
        listing = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version}
        if "/" not in group_version:  # the core group lives under /api
            routes[f"/api/{group_version}"] = {**listing, "resources": resources}
            continue
        group, version = group_version.split("/")
        entry = {"groupVersion": group_version, "version": version}
        api_groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
        routes[f"/apis/{group_version}"] = {**listing, "resources": resources}
    routes["/apis"] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": api_groups}
    plurals = {kind: plural for _, kind, plural in RESOURCES}
    for obj in groups:
        meta = obj["metadata"]
        path = (
            f"/apis/{obj['apiVersion']}/namespaces/{meta['namespace']}/{plurals[obj['kind']]}/{meta['name']}"
        )
        routes[path] = obj
    return routes


@contextmanager
def kube_api_stub(groups: list[dict], workdir: Path) -> Iterator[Path]:
    """Serve `groups` (RoleBasedGroups, scaling adapters: any namespaced kind of RESOURCES) on a free
    loopback port; yield a kubeconfig for it."""
    routes = _routes(groups)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = routes.get(self.path.split("?", 1)[0])
            if document is None:
                status = 404
                document = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound"}
            else:
                status = 200
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "stub", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                ],
                "users": [{"name": "stub", "user": {"token": "stub"}}],
                "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
                "current-context": "stub",
            }
        )
    )
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
