"""The pods the RBG controller makes of a rendered RoleBasedGroup, with the metadata it adds, so scanners
that do not know the RoleBasedGroup kind see what the cluster will run."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Iterator

from ..topology import GROUP_LABEL, ROLE_LABEL
from ..validation import RBG_KIND, is_rbg_api_object

# api/workloads/constants/label.go GroupUIDLabelKey, annotation.go RoleSizeAnnotationKey (RBG v0.8.0-alpha.5).
GROUP_UID_LABEL = "rbg.workloads.x-k8s.io/group-uid"
ROLE_SIZE_ANNOTATION = "rbg.workloads.x-k8s.io/role-size"


def group_unique_key(namespace: str, name: str) -> str:
    """api/workloads/v1alpha2/helper.go GenGroupUniqueKey: sha1 of "<namespace>/<name>"."""
    return hashlib.sha1(f"{namespace}/{name}".encode()).hexdigest()


def role_pods(group: dict, namespace: str, *, all_replicas: bool = False) -> Iterator[dict]:
    """v1 Pods of each role's standalonePattern template: the template's labels plus
    GetCommonLabelsFromRole (group-name, role-name, group-uid), its annotations plus role-size
    (pkg/reconciler/pod_reconciler.go ConstructPodTemplateSpecApplyConfiguration). One pod per role, or
    one per replica with ``all_replicas``."""
    name = group["metadata"]["name"]
    for role in group["spec"]["roles"]:
        template = role["standalonePattern"]["template"]
        replicas = int(role.get("replicas", 1))
        metadata = template.get("metadata", {})
        labels = {
            **metadata.get("labels", {}),
            GROUP_LABEL: name,
            ROLE_LABEL: role["name"],
            GROUP_UID_LABEL: group_unique_key(namespace, name),
        }
        annotations = {**metadata.get("annotations", {}), ROLE_SIZE_ANNOTATION: str(replicas)}
        for index in range(replicas if all_replicas else 1):
            yield {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{role['name']}-{index}",
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": annotations,
                },
                "spec": copy.deepcopy(template["spec"]),
            }


def as_cluster_objects(objects: Iterable[dict], namespace: str) -> list[dict]:
    """The rendered objects with every RoleBasedGroup replaced by its role pods, and the other RBG kinds
    (which make no pods) left out."""
    result: list[dict] = []
    for obj in objects:
        if obj.get("kind") == RBG_KIND and is_rbg_api_object(obj):
            result += role_pods(obj, namespace)
        elif not is_rbg_api_object(obj):
            result.append(obj)
    return result
