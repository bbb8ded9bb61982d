"""The wiring checks catch the mistakes they exist for (each seeded into a correct render)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from sglang_epd.topology import Topology, TopologyError, parse_flags
from sglang_epd.wiring import check_wiring


@pytest.fixture(scope="module")
def dynamic_objects(render_chart) -> list[dict]:
    return render_chart(set_values={"encoder.replicas": 2, "prefill.replicas": 2})


@pytest.fixture(scope="module")
def static_objects(render_chart) -> list[dict]:
    return render_chart(set_values={"encoderDiscovery.mode": "static", "encoder.replicas": 3})


def _role(objects: list[dict], name: str) -> dict:
    rbg = next(o for o in objects if o["kind"] == "RoleBasedGroup")
    return next(r for r in rbg["spec"]["roles"] if r["name"] == name)


def _args(objects: list[dict], name: str) -> list[str]:
    return _role(objects, name)["standalonePattern"]["template"]["spec"]["containers"][0]["args"]


def _registrar_command(objects: list[dict]) -> list[str]:
    return _role(objects, "vlm-encoder")["standalonePattern"]["template"]["spec"]["containers"][1]["command"]


def _replace(args: list[str], old: str, new: str) -> None:
    args[args.index(old)] = new


PREFILL_1 = "http://sglang-epd-vlm-prefill-1.s-sglang-epd-vlm-prefill"
DECODE_0 = "http://sglang-epd-vlm-decode-0.s-sglang-epd-vlm-decode"


def _container(objects: list[dict], name: str) -> dict:
    return _role(objects, name)["standalonePattern"]["template"]["spec"]["containers"][0]


def kep_service_url(o: list[dict]) -> None:
    """The seed KEP's `http://s-<rbg>-<role>-0:port` form, which RBG never creates."""
    _replace(_registrar_command(o), f"{PREFILL_1}:8997", "http://s-sglang-epd-vlm-prefill-1:8997")


def register_url_wrong_port(o: list[dict]) -> None:
    _replace(_registrar_command(o), f"{PREFILL_1}:8997", f"{PREFILL_1}:30000")


def pre_stop_missing(o: list[dict]) -> None:
    _container(o, "vlm-encoder").pop("lifecycle")


def watcher_on_wrong_bootstrap_port(o: list[dict]) -> None:
    containers = _role(o, "vlm-prefill")["standalonePattern"]["template"]["spec"]["containers"]
    watcher = next(c for c in containers if c["name"] == "encoder-watcher")
    _replace(watcher["command"], "8997", "8998")


def self_registration_flag(o: list[dict]) -> None:
    _args(o, "vlm-encoder").extend(["--encoder-register-urls", f"{PREFILL_1}:8997"])


def pod_index_out_of_range(o: list[dict]) -> None:
    _replace(_args(o, "sglang-router"), f"{DECODE_0}:30001", DECODE_0.replace("-0.", "-1.") + ":30001")


def router_bootstrap_port_mismatch(o: list[dict]) -> None:
    _replace(_args(o, "sglang-router"), "8998", "8999")


def flag_glued_to_value(o: list[dict]) -> None:
    _args(o, "vlm-decode")[0:2] = ["--model-path /models/x"]


def gpus_not_tp_size(o: list[dict]) -> None:
    _container(o, "vlm-decode")["resources"]["limits"]["nvidia.com/gpu"] = 2


def encoder_waits_for_prefill(o: list[dict]) -> None:
    _role(o, "vlm-encoder")["dependencies"] = ["vlm-prefill"]


def router_waits_for_encoders(o: list[dict]) -> None:
    _role(o, "sglang-router")["dependencies"].append("vlm-encoder")


def router_missing_dependency(o: list[dict]) -> None:
    _role(o, "sglang-router")["dependencies"] = ["vlm-prefill"]


def localhost_bind(o: list[dict]) -> None:
    _replace(_args(o, "vlm-prefill"), "0.0.0.0", "127.0.0.1")


def prefix_cache_on_prefill(o: list[dict]) -> None:
    _args(o, "vlm-prefill").append("--enable-prefix-mm-cache")


def encoder_with_pd_mode(o: list[dict]) -> None:
    _args(o, "vlm-encoder").extend(["--disaggregation-mode", "prefill"])


def service_selects_prefill(o: list[dict]) -> None:
    service = next(x for x in o if x["kind"] == "Service")
    service["spec"]["selector"]["rbg.workloads.x-k8s.io/role-name"] = "vlm-prefill"


DYNAMIC_MUTATIONS: dict[Callable[[list[dict]], None], str] = {
    kep_service_url: "names no pod",
    register_url_wrong_port: "listens on 8997",
    pre_stop_missing: "preStop must run the registrar's stop",
    watcher_on_wrong_bootstrap_port: "want `watch --bootstrap-port 8997`",
    self_registration_flag: "--encoder-register-urls registers only within 150 s",
    pod_index_out_of_range: "names no pod",
    router_bootstrap_port_mismatch: "bootstrap port must be",
    flag_glued_to_value: "glues a flag to its value",
    gpus_not_tp_size: "--tp-size 1",
    encoder_waits_for_prefill: "must have no dependencies and no dependents",
    router_waits_for_encoders: "must not depend on vlm-encoder",
    router_missing_dependency: "must depend on vlm-decode",
    localhost_bind: "--host must be 0.0.0.0",
    prefix_cache_on_prefill: "only valid with --encoder-only",
    encoder_with_pd_mode: "cannot be combined",
    service_selects_prefill: "selector must be",
}


@pytest.mark.parametrize("mutate", list(DYNAMIC_MUTATIONS), ids=[m.__name__ for m in DYNAMIC_MUTATIONS])
def test_check_catches(dynamic_objects: list[dict], mutate: Callable[[list[dict]], None]) -> None:
    expected = DYNAMIC_MUTATIONS[mutate]
    objects = copy.deepcopy(dynamic_objects)
    assert check_wiring(Topology.from_objects(objects), objects) == []
    mutate(objects)
    problems = check_wiring(Topology.from_objects(objects), objects)
    assert any(expected in p for p in problems), problems


def test_static_list_missing_an_encoder(static_objects: list[dict]) -> None:
    objects = copy.deepcopy(static_objects)
    args = _args(objects, "vlm-prefill")
    args.remove("http://sglang-epd-vlm-encoder-2.s-sglang-epd-vlm-encoder:30002")
    problems = check_wiring(Topology.from_objects(objects), objects)
    assert any("want each pod of vlm-encoder once" in p for p in problems), problems


def test_parse_flags_keeps_repeats_and_inline_values() -> None:
    flags = parse_flags(["--prefill", "http://a:1", "8998", "--prefill", "http://b:1", "--x=1", "--switch"])
    assert flags == {"--prefill": [["http://a:1", "8998"], ["http://b:1"]], "--x": [["1"]], "--switch": [[]]}


def test_parse_flags_rejects_leading_value() -> None:
    with pytest.raises(TopologyError, match="before any flag"):
        parse_flags(["value", "--flag"])
