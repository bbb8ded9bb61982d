"""Deployment layouts the planner compares: the chart's four modes with replica counts and TP sizes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MODES = ("epd", "encoder+collocated", "pd", "collocated")
DEFAULT_TP_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True, order=True)
class Layout:
    """One deployment. `servers` are the language servers: prefills (epd, pd) or unsplit servers
    (collocated, encoder+collocated); `decodes` only in epd and pd. Each encoder has `encoder_tp` GPUs."""

    mode: str
    encoders: int
    servers: int
    server_tp: int
    decodes: int = 0
    decode_tp: int = 1
    encoder_tp: int = 1

    @property
    def uses_encoders(self) -> bool:
        return self.mode in ("epd", "encoder+collocated")

    @property
    def disaggregated(self) -> bool:
        return self.mode in ("epd", "pd")

    @property
    def gpus(self) -> int:
        return self.encoders * self.encoder_tp + self.servers * self.server_tp + self.decodes * self.decode_tp

    @property
    def label(self) -> str:
        """`4E+1P+1D`, `2P(tp2)+2D`, `3E+1S`, `2S(tp4)`: E encoders, P prefills, D decodes, S servers."""

        def part(count: int, letter: str, tp: int) -> str:
            return f"{count}{letter}" + (f"(tp{tp})" if tp > 1 else "")

        parts = []
        if self.uses_encoders:
            parts.append(part(self.encoders, "E", self.encoder_tp))
        parts.append(part(self.servers, "P" if self.disaggregated else "S", self.server_tp))
        if self.disaggregated:
            parts.append(part(self.decodes, "D", self.decode_tp))
        return "+".join(parts)

    def values(self) -> dict[str, object]:
        """The chart values of this layout (charts/sglang-epd/values.yaml). Round-robin routing is what the
        planner models, so the router is told to use it."""
        values: dict[str, object] = {"mode": self.mode}
        if self.uses_encoders:
            values["encoder"] = {"replicas": self.encoders, "tpSize": self.encoder_tp}
        role = "prefill" if self.disaggregated else "server"
        values[role] = {"replicas": self.servers, "tpSize": self.server_tp}
        if self.disaggregated:
            values["decode"] = {"replicas": self.decodes, "tpSize": self.decode_tp}
        values["router"] = {"policy": "round_robin"}
        return values


def layouts_within(
    gpus: int,
    tp_sizes: Sequence[int] = DEFAULT_TP_SIZES,
    modes: Sequence[str] = MODES,
    encoder_tp_sizes: Sequence[int] = (1,),
) -> Iterator[Layout]:
    """Every layout of `modes` on at most `gpus` GPUs: language roles at each of `tp_sizes`, encoders at each
    of `encoder_tp_sizes` (TP 1 by default: the ViT barely gets faster with TP, see the cost profiles'
    `vit_tp_speedup`, so the GPUs do more as separate encoders)."""
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        with_encoders = mode in ("epd", "encoder+collocated")
        for encoder_tp in encoder_tp_sizes if with_encoders else (1,):
            for encoders in range(1, gpus // encoder_tp + 1) if with_encoders else (0,):
                left = gpus - encoders * encoder_tp
                for server_tp in tp_sizes:
                    for servers in range(1, left // server_tp + 1):
                        rest = left - servers * server_tp
                        if mode in ("epd", "pd"):
                            for decode_tp in tp_sizes:
                                for decodes in range(1, rest // decode_tp + 1):
                                    yield Layout(
                                        mode, encoders, servers, server_tp, decodes, decode_tp, encoder_tp
                                    )
                        else:
                            yield Layout(mode, encoders, servers, server_tp, encoder_tp=encoder_tp)
