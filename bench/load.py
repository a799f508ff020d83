"""Closed-loop HTTP/1.1 load from its own process: C keep-alive connections share N requests.

`python -m bench.load --port 8000 --path /health --requests 20000` prints one JSON object:
requests, seconds, req/s, p50 and p99 latency in ms, and the count of each status code. A raw
asyncio client (uvloop when installed): httpx would saturate its core before the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Run:
    budget: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def take(self) -> bool:
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def connection(port: int, request: bytes, run: Run, record: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while run.take():
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            if record:
                run.latencies.append(time.perf_counter() - started)
                run.statuses[status] += 1
    finally:
        writer.close()


async def drive(port: int, request: bytes, requests: int, connections: int, record: bool) -> Run:
    run = Run(requests)
    await asyncio.gather(*(connection(port, request, run, record) for _ in range(connections)))
    return run


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(args: argparse.Namespace) -> dict[str, object]:
    lines = [f"GET {args.path} HTTP/1.1", f"Host: 127.0.0.1:{args.port}", *args.header]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    await drive(args.port, request, args.warmup, args.connections, record=False)
    started = time.perf_counter()
    run = await drive(args.port, request, args.requests, args.connections, record=True)
    seconds = time.perf_counter() - started
    ordered = sorted(run.latencies)
    result: dict[str, object] = {
        "requests": len(ordered),
        "seconds": round(seconds, 3),
        "rps": round(len(ordered) / seconds, 1),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "statuses": {str(code): count for code, count in sorted(run.statuses.items())},
    }
    if args.raw:
        result["latencies_ms"] = [round(value * 1000, 3) for value in run.latencies]
    return result


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--raw", action="store_true", help="also print every latency (ms)")
    return parser.parse_args()


if __name__ == "__main__":
    options = arguments()
    try:
        import uvloop

        result = uvloop.run(main(options))
    except ImportError:
        result = asyncio.run(main(options))
    print(json.dumps(result))
