"""The one client, file server and memory probe that ``bench/legacy.py`` uses for both sides.

Standard library only, so the same code measures the legacy stack and the agent:

    legacy_client.py files PORT ROOT          serve ROOT; ``/slow/<path>`` adds 50 ms
    legacy_client.py load PORT N C BODY AUTH  N POSTs over C threads, one new connection each

``load`` prints one JSON line: nearest-rank percentiles in ms, requests per second
and the status codes. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import functools
import http.client
import json
import math
import os
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = "/receiver_no_training/"
SLOW_PREFIX = "/slow/"
SLOW_SECONDS = 0.050
LOAD_LIMIT_SECONDS = 120.0


class _Files(SimpleHTTPRequestHandler):
    """The reproduction's static file server, plus 50 ms before any ``/slow/`` path."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith(SLOW_PREFIX):
            time.sleep(SLOW_SECONDS)
            self.path = "/" + self.path[len(SLOW_PREFIX) :]
        super().do_GET()


class _Server(ThreadingHTTPServer):
    """The stdlib's accept queue is 5: 16 parallel connects would lose SYNs (a 1 s retry).

    Any real file host (a bucket, a CDN, nginx's 511) queues far more.
    """

    request_queue_size = 128


def serve_files(port: int, root: str) -> None:
    """Serve ``root`` on 127.0.0.1:``port`` until killed."""
    handler = functools.partial(_Files, directory=root)
    _Server(("127.0.0.1", port), handler).serve_forever()


def request(port: int, method: str, path: str, body: bytes | None, auth: str | None) -> int:
    """One request on a new connection; the status once the whole answer is read."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if auth:
        headers["Authorization"] = auth
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def nearest_rank(sorted_values: list[float], percent: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(percent / 100 * len(sorted_values)) - 1)]


def load(port: int, count: int, clients: int, body: bytes, auth: str) -> dict[str, object]:
    """``count`` POSTs of ``body`` from ``clients`` threads; latency around connect to read."""
    latencies: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()
    numbers = iter(range(count))
    stop_at = time.monotonic() + LOAD_LIMIT_SECONDS

    def worker() -> None:
        while time.monotonic() < stop_at:
            with lock:
                if next(numbers, None) is None:
                    return
            started = time.perf_counter()
            try:
                code = str(request(port, "POST", PATH, body, auth))
            except OSError as exc:
                code = type(exc).__name__
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                codes[code] = codes.get(code, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": nearest_rank(latencies, 50),
        "p99_ms": nearest_rank(latencies, 99),
        "rps": len(latencies) / wall,
        "codes": codes,
    }


def tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
                parent = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def memory_mib(roots: list[int]) -> tuple[float, float, int]:
    """(RSS, PSS, process count) summed over every root's process tree, in MiB."""
    rss = pss = 0
    count = 0
    for pid in {p for root in roots for p in tree(root)}:
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        found = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
        if not found:  # a zombie or a kernel thread
            continue
        rss += found[0]
        pss += sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        count += 1
    return rss / 1024, pss / 1024, count


def cpu_seconds(roots: list[int]) -> float:
    """User plus system CPU time of every live process in the roots' trees, in seconds.

    On a shared machine, wall time stretches with the load; CPU time much less.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in {p for root in roots for p in tree(root)}:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "files":
        serve_files(int(args[0]), args[1])
    elif command == "load":
        port, count, clients, body, auth = args
        print(json.dumps(load(int(port), int(count), int(clients), body.encode(), auth)))
    else:
        raise SystemExit(f"unknown command {command!r}; see the docstring")
