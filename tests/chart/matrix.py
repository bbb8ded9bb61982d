"""The chart's mode/option matrix, shared by the tests that render every combination."""

from __future__ import annotations

MODES = {
    "epd": {"encoder", "prefill", "decode", "router"},
    "pd": {"prefill", "decode", "router"},
    "encoder+collocated": {"encoder", "server", "router"},
    "collocated": {"server", "router"},
}

OPTIONS: dict[str, dict[str, object]] = {
    "router-discovery": {"router.discovery.enabled": True, "decode.port": 30000},
    "defaults": {},
    "scaled": {"encoder.replicas": 5, "prefill.replicas": 3, "decode.replicas": 2, "server.replicas": 3},
    "tp2": {"prefill.tpSize": 2, "decode.tpSize": 2, "server.tpSize": 2, "encoder.tpSize": 2},
    "rdma-mooncake": {
        "rdma.enabled": True,
        "rdma.ibDevices": "mlx5_0,mlx5_1",
        "rdma.hostNetwork": True,
        "disaggregation.transferBackend": "mooncake",
        "encoderDiscovery.transferBackend": "mooncake",
    },
    "nixl-no-metrics": {"disaggregation.transferBackend": "nixl", "metrics.enabled": False},
    "renamed-roles": {
        "encoder.name": "vit",
        "prefill.name": "pre",
        "decode.name": "dec",
        "server.name": "srv",
        "router.name": "rt",
        "fullnameOverride": "vlm",
    },
    "custom-ports": {
        "encoder.port": 40002,
        "prefill.port": 40000,
        "decode.port": 40001,
        "server.port": 40003,
        "encoderDiscovery.bootstrapPort": 9997,
        "disaggregation.bootstrapPort": 9998,
        "router.port": 9000,
    },
    "pvc-model": {"model.source": "pvc", "model.pvc.claimName": "weights", "model.path": "qwen"},
    "hostpath-model": {"model.source": "hostPath", "model.hostPath.path": "/data/qwen"},
}
