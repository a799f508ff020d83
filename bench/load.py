"""Closed-loop HTTP/1.1 load from its own process: C keep-alive connections share N requests.

`python -m bench.load --port 8000 --path /health --requests 20000` prints one JSON object:
requests, seconds, req/s, p50 and p99 latency in ms, and the count of each status code. A raw
asyncio client (uvloop when installed): httpx would saturate its core before the server does.
`--method POST --body '{"sku": "S-{n}"}'` sends a JSON body, `{n}` replaced by a number unique
to each request of the run (so each create is a new item).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Run:
    budget: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    taken: int = 0

    def take(self) -> int | None:
        """The number of the next request, or None when the budget is spent."""
        if self.budget <= 0:
            return None
        self.budget -= 1
        self.taken += 1
        return self.taken


@dataclass(frozen=True)
class Request:
    head: bytes
    body: str | None  # with `{n}` where the request number goes

    def render(self, number: int) -> bytes:
        if self.body is None:
            return self.head + b"\r\n"
        body = self.body.replace("{n}", str(number)).encode()
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body


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


async def connection(port: int, request: Request, run: Run, record: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (number := run.take()) is not None:
            payload = request.render(number)
            started = time.perf_counter()
            writer.write(payload)
            status = await read_response(reader)
            if record:
                run.latencies.append(time.perf_counter() - started)
                run.statuses[status] += 1
    finally:
        writer.close()


async def drive(port: int, request: Request, requests: int, connections: int, record: bool) -> Run:
    run = Run(requests)
    await asyncio.gather(*(connection(port, request, run, record) for _ in range(connections)))
    return run


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(args: argparse.Namespace) -> dict[str, object]:
    lines = [f"{args.method} {args.path} HTTP/1.1", f"Host: 127.0.0.1:{args.port}", *args.header]
    if args.body is not None:
        lines.append("Content-Type: application/json")
    head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    # Every run (and its warm-up) numbers its requests apart from every other run.
    run_id = secrets.token_hex(4)
    request = Request(head, _prefixed(args.body, run_id))
    warmup = Request(head, _prefixed(args.body, "w" + run_id))
    await drive(args.port, warmup, args.warmup, args.connections, record=False)
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


def _prefixed(body: str | None, prefix: str) -> str | None:
    return None if body is None else body.replace("{n}", prefix + "{n}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", help="JSON body; {n} becomes the request's number")
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
