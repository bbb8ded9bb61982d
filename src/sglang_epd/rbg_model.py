"""A small executable model of the RBG controller rules the chart is designed around, so that tests can run
the rendered RoleBasedGroup through them. Each function follows one piece of sgl-project/rbg at tag
v0.8.0-alpha.5 (commit 993491fb); docs/rbg-rules.md lists the rules and what the chart does about each.
"""

from __future__ import annotations

from collections.abc import Mapping


def _roles(rbg: Mapping) -> dict[str, dict]:
    return {role["name"]: role for role in rbg["spec"]["roles"]}


def replicas(role: Mapping) -> int:
    # The CRD defaults a missing count to 1 (api/workloads/v1alpha2/rolebasedgroup_types.go).
    return int(role.get("replicas", 1))


def dependency_levels(rbg: Mapping) -> list[list[str]]:
    """Roles by level, each level in name order (pkg/dependency/dependency.go SortRoles, dependencyOrder):
    a role's level is one more than the highest level of its dependencies, 0 without any."""
    roles = _roles(rbg)
    level: dict[str, int] = {}

    def of(name: str, path: tuple[str, ...] = ()) -> int:
        if name in path:
            raise ValueError(f"cycle detected for role {name!r}")
        if name not in level:
            deps = roles[name].get("dependencies") or []
            level[name] = 1 + max((of(dep, (*path, name)) for dep in deps), default=-1)
        return level[name]

    for name in sorted(roles):
        of(name)
    return [sorted(n for n in roles if level[n] == k) for k in range(max(level.values(), default=-1) + 1)]


def reconciled_roles(rbg: Mapping, ready: Mapping[str, int]) -> list[str]:
    """The roles one reconcile pass updates (scale, template, Service, scaling adapter), given each role's
    ready instance count (`ready`, default: all of them).

    internal/controller/workloads/rolebasedgroup_controller.go reconcileRoles: levels in order; before a
    role is reconciled every dependency must be Ready, which for the default RoleInstanceSet workload is
    status.readyReplicas == spec.replicas (pkg/reconciler/roleinstanceset_reconciler.go CheckWorkloadReady).
    The first role whose dependencies are not Ready ends the pass: neither it, nor the rest of its level,
    nor any later level is reconciled. This happens on every reconcile, not only at creation.
    """
    roles = _roles(rbg)
    done: list[str] = []
    for level in dependency_levels(rbg):
        for name in level:
            for dep in roles[name].get("dependencies") or []:
                if ready.get(dep, replicas(roles[dep])) != replicas(roles[dep]):
                    return done
            done.append(name)
    return done


def gang_min_member(rbg: Mapping) -> int:
    """minMember of the group's PodGroup: every pod of every role (api/workloads/v1alpha2/helper.go
    GetGroupSize; pkg/scheduler/k8s-scheduler-plugin/manager.go and volcano/manager.go)."""
    return sum(replicas(role) for role in rbg["spec"]["roles"])


def gang_can_start(rbg: Mapping) -> bool:
    """Whether a gang-scheduled group ever gets its first pod scheduled: the scheduler binds none of the
    gang until minMember pods exist, and the first pass creates only the roles whose dependencies are
    already Ready (none are, nothing runs yet)."""
    roles = _roles(rbg)
    created = sum(replicas(roles[name]) for name in reconciled_roles(rbg, ready=dict.fromkeys(roles, 0)))
    return created >= gang_min_member(rbg)


def webhook_rejections(old: Mapping, new: Mapping, adapters: Mapping[str, int]) -> list[str]:
    """What RBG's validating webhook says to an update of `old` to `new`, given the scaling adapters'
    spec.replicas by role name (api/workloads/v1alpha2/rolebasedgroup_validation.go
    ValidateScalingAdapterReplicas, on update only, from v0.8.0-alpha.2): for a role with
    scalingAdapter.enable that existed before and whose (defaulted) replicas changed, the new count must
    equal its adapter's; roles without an adapter object are let through."""
    before = _roles(old)
    problems = []
    for index, role in enumerate(new["spec"]["roles"]):
        name = role["name"]
        if not (role.get("scalingAdapter") or {}).get("enable") or name not in before:
            continue
        if replicas(role) == replicas(before[name]) or name not in adapters:
            continue
        if replicas(role) != adapters[name]:
            problems.append(
                f"spec.roles[{index}].replicas (role {name!r}): cannot be changed to {replicas(role)} while "
                f"scalingAdapter.enable is true and the ScalingAdapter has spec.replicas {adapters[name]}"
            )
    return problems
