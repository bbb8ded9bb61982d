"""The HTTP client every simulated server uses to reach the others.

`SGLANG_SIM_HOSTS="name=127.0.0.7,..."` resolves names (e.g. the pods' DNS names in the rendered
chart's URLs) to local addresses, so a local deployment can run the rendered arguments unchanged.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver


class HostMapResolver(AbstractResolver):
    """Names in `mapping` resolve to their address; everything else through the system resolver."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = dict(mapping)
        self._fallback = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        address = self._mapping.get(host)
        if address is None:
            return await self._fallback.resolve(host, port, family)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        await self._fallback.close()


def client_session(hosts: Mapping[str, str]) -> aiohttp.ClientSession:
    """A session without a connection limit (the fan-out to encoders must never queue in the client)."""
    connector = aiohttp.TCPConnector(limit=0, resolver=HostMapResolver(hosts) if hosts else None)
    return aiohttp.ClientSession(connector=connector)
