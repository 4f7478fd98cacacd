#!/usr/bin/env python3
"""Bounded load test of `qa serve` on loopback: concurrent clients, mixed ask and search.

Starts its own server on a free loopback port (rate limit off, so that the load
is not refused), runs CLIENTS concurrent clients for SECONDS seconds, then prints
a table: requests, errors, requests per second, latency p50/p99 per route, and
the server's memory (RSS) averaged over the first and the last 10 seconds.

Usage: python scripts/bench_load.py [--index DIR] [--clients 32] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

QUESTIONS = [
    "What did Cameron ask Putin?",
    "ماذا طلب كاميرون من بوتين؟",
    "على ماذا اتفق أوباما وبوتين؟",
    "How long did the talks between Obama and Putin last?",
    "ما منصب يوري أوشاكوف؟",
    "What does Article 5 of the NATO treaty say?",
    "What is the capital of Australia?",
]
SEARCHES = ["الضربات الجوية الروسية", "Paris attacks", "قمة مجموعة العشرين", "حلف شمال الأطلسي"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def client(number: int, base: str, deadline: float, results: list[tuple[str, int, float]]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        turn = number
        while time.monotonic() < deadline:
            turn += 1
            started = time.perf_counter()
            if turn % 2:
                route = "POST /api/ask"
                response = await http.post("/api/ask", json={"question": QUESTIONS[turn % len(QUESTIONS)]})
            else:
                route = "GET /api/search"
                response = await http.get("/api/search", params={"q": SEARCHES[turn % len(SEARCHES)], "k": 5})
            results.append((route, response.status_code, (time.perf_counter() - started) * 1000))


async def sample_memory(pid: int, deadline: float, samples: list[tuple[float, float]]) -> None:
    start = time.monotonic()
    while time.monotonic() < deadline:
        samples.append((time.monotonic() - start, rss_mb(pid)))
        await asyncio.sleep(1)


async def run_load(base: str, pid: int, clients: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    results: list[tuple[str, int, float]] = []
    memory: list[tuple[float, float]] = []
    await asyncio.gather(
        sample_memory(pid, deadline, memory), *(client(i, base, deadline, results) for i in range(clients))
    )
    errors = sum(1 for _, status, _ in results if status != 200)
    print("| measure | value |\n| --- | --- |")
    print(f"| clients / seconds | {clients} / {seconds:g} |")
    print(f"| requests | {len(results)} |")
    print(f"| errors (non-200) | {errors} |")
    print(f"| requests per second | {len(results) / seconds:.1f} |")
    for route in ("POST /api/ask", "GET /api/search"):
        latencies = sorted(ms for name, _, ms in results if name == route)
        if latencies:
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            print(f"| {route} p50 / p99 ms | {statistics.median(latencies):.0f} / {p99:.0f} |")
    first = [mb for t, mb in memory if t < 10]
    last = [mb for t, mb in memory if t >= seconds - 10]
    memory_mb = f"{statistics.mean(first):.0f} / {statistics.mean(last):.0f}"
    print(f"| server RSS first 10 s / last 10 s MB | {memory_mb} |")
    if errors:
        sys.exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/sample"))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    if args.seconds < 20:
        parser.error("--seconds must be at least 20 (memory is compared over the first and last 10 s)")
    port = free_port()
    # Every client of the load test comes from one address: no per-address limits.
    env = {**os.environ, "QA_LIMITS_RATE_LIMIT_PER_MINUTE": "0", "QA_LIMITS_MAX_CONCURRENT_PER_CLIENT": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(args.index), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            print("error: qa serve did not start", file=sys.stderr)
            return 1
        asyncio.run(run_load(base, server.pid, args.clients, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
