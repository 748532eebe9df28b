"""The agent against the legacy stack, side by side, in one run (issue 12).

The legacy stack is the reproduction kept next to the repository, in
``../shared/peers/seed-django`` (Django + DRF + gunicorn, Celery on RabbitMQ, a fake
Saturno): it is copied to ``bench/.cache/seed-django`` (its ``setup.sh`` runs there
once: RabbitMQ from apt, the legacy pins in a venv) and cold-started the way its
``measure.sh`` does. The agent is cold-started against the test kit's emulators.

Both sides get the same workload and the same client (``bench/legacy_client.py``):
the reproduction's fixtures (a 20 MB zip of 50 images plus 50 arts of 200 kB) from
one static file server, once as is and once with 50 ms before every answer; one new
connection per request; nearest-rank percentiles; RSS and PSS summed over each
side's process tree. Rounds alternate legacy, agent, legacy, agent... so the noise
of the shared machine falls on both; every figure is the median over the rounds,
and the host's load average is recorded. Prints the table and writes it into
``bench/RESULTS.md`` (between ``<!-- legacy:<label> -->`` markers).

    .venv/bin/python bench/legacy.py [--rounds 3] [--requests 500] [--label after]
    .venv/bin/python bench/legacy.py --agent-commit main --label before

``--agent-commit`` runs the agent's code as it was at that commit (exported from git
and put first on the agent's ``PYTHONPATH``) against today's emulators and bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notraining_agent.util.fsio import atomic_write
from notraining_testkit.emulators.suite import AgentProcess, start_world

sys.path.insert(0, str(Path(__file__).resolve().parent))
import legacy_client as client  # the client is a stdlib-only sibling script

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "seed-django"
RESULTS = ROOT / "bench" / "RESULTS.md"
REPRO_RELATIVE = Path("shared") / "peers" / "seed-django"
PORTS = {"app": 18080, "saturno": 18081, "files": 18082, "amqp": 18672, "dist": 18673}
EPMD_PORT = 18369
IDLE_SECONDS = 5.0
POLL_SECONDS = 0.01
START_LIMIT = 180.0
JOB_LIMIT = 120.0
AGENT_PORT = 18090
RABBIT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
LEGACY_TOKEN = secrets.token_urlsafe(32)  # the reproduction reads SYSTEM_INTERNAL_TOKEN

Figures = dict[str, float]


# -- where the reproduction is, and its writable copy ------------------------------------


def find_reproduction() -> Path:
    """``../shared/peers/seed-django`` from the repository root (of the main checkout too)."""
    roots = [ROOT]
    common = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if common:  # in a linked worktree, the main checkout's neighbour counts as well
        roots.append(Path(common).parent)
    for root in roots:
        candidate = root.parent / REPRO_RELATIVE
        if (candidate / "measure.sh").is_file() and (candidate / "setup.sh").is_file():
            return candidate
    raise SystemExit(
        f"bench/legacy.py: the legacy reproduction is missing: expected "
        f"{ROOT.parent / REPRO_RELATIVE} (../shared/peers/seed-django next to the repository, "
        "holding setup.sh and measure.sh). Put it there and run `make bench` again."
    )


def prepare(repro: Path) -> None:
    """Copy the reproduction, install it once (setup.sh), make fixtures, migrate, seed RabbitMQ."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for item in repro.iterdir():
        if item.name in {".venv", ".run", "data", "results"}:
            continue
        target = CACHE / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(item, target)
        for path in [target, *target.rglob("*")] if target.is_dir() else [target]:
            path.chmod(path.stat().st_mode | 0o200)
    if not (CACHE / ".venv" / "bin" / "gunicorn").exists() or not RABBIT.exists():
        print("legacy: first run, installing with setup.sh (RabbitMQ from apt, a venv)", flush=True)
        subprocess.run(["bash", "setup.sh"], cwd=CACHE, check=True)
    if not (CACHE / "data" / "files" / "big.zip").exists():
        subprocess.run(
            [sys.executable, "fakes/make_fixtures.py", "data/files"], cwd=CACHE, check=True
        )
    (CACHE / ".run").mkdir(exist_ok=True)
    subprocess.run(
        [str(CACHE / ".venv/bin/python"), "manage.py", "migrate", "-v0"],
        cwd=CACHE,
        env={**os.environ, **legacy_env(CACHE / ".run" / "work")},
        check=True,
    )
    pristine = CACHE / ".run" / "rabbit-pristine"
    if not (pristine / "mnesia").exists():  # the broker's first boot, once: like the VM image
        pristine.mkdir(parents=True, exist_ok=True)
        (pristine / "enabled_plugins").write_text("[].\n")
        procs = Processes(pristine)
        procs.start("epmd", ["epmd", "-port", str(EPMD_PORT), "-address", "127.0.0.1"], pristine)
        procs.start("rabbit", [str(RABBIT)], pristine)
        wait_port(PORTS["amqp"], 120)
        time.sleep(1)
        procs.stop()
        shutil.rmtree(pristine / "log", ignore_errors=True)


def legacy_env(work: Path, rabbit_home: Path | None = None) -> dict[str, str]:
    """The reproduction's environment, as measure.sh sets it."""
    env = {
        "DJANGO_DB": str(CACHE / ".run" / "db.sqlite3"),
        "NTD_WORK_DIR": str(work),
        "SATURNO_URL": f"http://127.0.0.1:{PORTS['saturno']}",
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{PORTS['amqp']}//",
        "ERL_EPMD_PORT": str(EPMD_PORT),
        "SYSTEM_INTERNAL_TOKEN": LEGACY_TOKEN,
    }
    if rabbit_home is not None:
        env |= {
            "HOME": str(rabbit_home),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(PORTS["amqp"]),
            "RABBITMQ_DIST_PORT": str(PORTS["dist"]),
            "RABBITMQ_MNESIA_BASE": str(rabbit_home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(rabbit_home / "log"),
            "RABBITMQ_PID_FILE": str(rabbit_home / "rabbit.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(rabbit_home / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
    return env


class Processes:
    """What one side started, by PID; stopped like measure.sh: TERM in reverse, then KILL."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, argv: list[str], rabbit_home: Path | None, cwd: Path = CACHE
    ) -> None:
        """Start ``argv`` in the background, its output in ``<logs>/<name>.log``."""
        env = {**os.environ, **legacy_env(self.logs / "work", rabbit_home)}
        with (self.logs / f"{name}.log").open("wb") as out:
            self.started[name] = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def pids(self, *names: str) -> list[int]:
        """The PIDs of the named processes (all when none is named)."""
        return [p.pid for n, p in self.started.items() if not names or n in names]

    def stop(self) -> None:
        """TERM every started process in reverse order, wait up to 20 s, KILL what is left."""
        every = {pid for root in self.pids() for pid in client.tree(root)}
        for process in reversed(self.started.values()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in every):
            for process in self.started.values():
                process.poll()
            time.sleep(0.1)
        for pid in every:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for process in self.started.values():
            process.wait(timeout=10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_port(port: int, limit: float) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.02)
    raise SystemExit(f"bench/legacy.py: nothing listens on port {port} after {limit:.0f} s")


def port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


# -- the workload -------------------------------------------------------------------------


def job(ntd: str, *, big: bool, slow: bool = False) -> dict[str, Any]:
    """The reproduction's job body; ``slow`` routes every file through the +50 ms path."""
    files = f"http://127.0.0.1:{PORTS['files']}" + ("/slow" if slow else "")
    return {
        "country": "PE",
        "channel": "test",
        "label": "label",
        "category": "cat",
        "zip_art": files + ("/big.zip" if big else "/tiny.zip"),
        "arts_path": [f"{files}/arts/art_{i:02d}.jpg" for i in range(50)] if big else [],
        "no_transaction_id": "no-" + ntd,
        "ntd_transaction_id": ntd,
    }


def post_job(port: int, body: dict[str, Any], auth: str) -> tuple[int, float]:
    """POST one job: its status and how long the answer took, in ms."""
    started = time.perf_counter()
    code = client.request(port, "POST", client.PATH, json.dumps(body).encode(), auth)
    return code, (time.perf_counter() - started) * 1000


async def run_load(port: int, count: int, clients: int, body: dict[str, Any], auth: str) -> Figures:
    """The client's load command in its own process, so it competes with nothing of ours."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(client.__file__)),
        "load",
        str(port),
        str(count),
        str(clients),
        json.dumps(body),
        auth,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), client.LOAD_LIMIT_SECONDS + 30)
    result = json.loads(out)
    print(f"    load c{clients}: {result}", flush=True)
    return {"p99_ms": result["p99_ms"], "rps": result["rps"]}


async def poll(check: Callable[[], bool], limit: float) -> float:
    """Call ``check`` (in a thread) every POLL_SECONDS until it holds; the time it held."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if await asyncio.to_thread(check):
            return time.time()
        await asyncio.sleep(POLL_SECONDS)
    raise SystemExit(f"bench/legacy.py: gave up after {limit:.0f} s")


def fake_saturno(path: str) -> Any:
    """GET from the reproduction's fake Saturno; None on 404."""
    url = f"http://127.0.0.1:{PORTS['saturno']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


async def legacy_callback(ntd: str) -> float:
    """When the fake Saturno got ``end_process`` for ``ntd`` (its own clock, time.time())."""
    found: list[float] = []

    def check() -> bool:
        record = fake_saturno(f"/_find?ntd={ntd}")
        if record:
            found.append(record["t"])
        return bool(record)

    await poll(check, JOB_LIMIT)
    return found[0]


# -- one cold start of each side ------------------------------------------------------------


def launch_legacy(procs: Processes, run: Path) -> None:
    """What measure.sh starts at once, with no ordering: broker, web, worker, boot script."""
    procs.start("epmd", ["epmd", "-port", str(EPMD_PORT), "-address", "127.0.0.1"], run / "rabbit")
    procs.start("rabbit", [str(RABBIT)], run / "rabbit")
    gunicorn = [str(CACHE / ".venv/bin/gunicorn"), "--workers", "3"]
    procs.start(
        "gunicorn",
        [*gunicorn, "--bind", f"127.0.0.1:{PORTS['app']}", "config.wsgi:application"],
        None,
    )
    procs.start(
        "celery",
        [str(CACHE / ".venv/bin/celery"), "-A", "config", "worker", "-l", "info"],
        None,
    )
    procs.start("sending_ip", [str(CACHE / ".venv/bin/python"), "sending_ip.py"], None)


async def legacy_round(number: int, requests: int) -> Figures:
    """Cold-start the legacy stack, measure it, stop it."""
    run = CACHE / ".run" / f"round-{os.getpid()}-{number}"
    shutil.rmtree(run, ignore_errors=True)
    (run / "work").mkdir(parents=True)
    shutil.copytree(CACHE / ".run" / "rabbit-pristine", run / "rabbit")
    auth = LEGACY_TOKEN
    procs = Processes(run)
    figures: Figures = {}
    try:
        started = time.time()
        launch_legacy(procs, run)
        probe = job(f"probe-{number}", big=False)

        def first_200() -> bool:  # like bench.py: POST only once both ports listen
            if not (port_open(PORTS["app"]) and port_open(PORTS["amqp"])):
                return False
            try:
                return post_job(PORTS["app"], probe, auth)[0] == 200
            except OSError:
                return False

        figures["first_200_s"] = await poll(first_200, START_LIMIT) - started
        figures["start_cpu_s"] = client.cpu_seconds(procs.pids())
        registered: list[float] = []

        def boot_report() -> bool:  # the fake Saturno lives for the whole run: this round's
            times = [r["t"] for r in fake_saturno("/_records?path=/register_ip/") or []]
            registered.extend(t for t in times if t >= started)
            return bool(registered)

        await poll(boot_report, START_LIMIT)
        figures["boot_report_s"] = min(registered) - started
        await legacy_callback(probe["ntd_transaction_id"])  # the worker is ready
        await asyncio.sleep(IDLE_SECONDS)
        roots = procs.pids("epmd", "rabbit", "gunicorn", "celery")
        figures["idle_rss"], figures["idle_pss"], _ = client.memory_mib(roots)
        for slow in (False, True):
            body = job(f"big-{number}-{int(slow)}", big=True, slow=slow)
            cpu_before = client.cpu_seconds(roots)
            posted = time.time()
            code, post_ms = await asyncio.to_thread(post_job, PORTS["app"], body, auth)
            assert code == 200, f"legacy answered {code} to the big job"  # noqa: S101
            took = await legacy_callback(body["ntd_transaction_id"]) - posted
            figures["job_slow_s" if slow else "job_s"] = took
            if not slow:
                figures["job_cpu_s"] = client.cpu_seconds(roots) - cpu_before
                figures["post_ms"] = post_ms
                figures["end_rss"], figures["end_pss"], _ = client.memory_mib(roots)
        # The legacy has no idempotency: a re-post is one more (tiny) job for the worker.
        tiny = job(f"repost-{number}", big=False)
        c1 = await run_load(PORTS["app"], requests, 1, tiny, auth)
        c8 = await run_load(PORTS["app"], requests, 8, tiny, auth)
        figures |= {"repost_p99_ms": c1["p99_ms"], "c8_rps": c8["rps"]}
    finally:
        await asyncio.to_thread(procs.stop)
        shutil.rmtree(run, ignore_errors=True)
    return figures


def durable_write_ms(folder: Path) -> float:
    """Median time of the agent's own atomic write (temp file, fsync, rename, fsync folder).

    Accepting a job costs one of these before the 200: the disk's floor under that figure.
    """
    times = []
    for _ in range(15):
        started = time.perf_counter()
        atomic_write(folder / "bench-fsync.json", "x" * 2048)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def ours_round(number: int, requests: int, tmp: Path) -> Figures:
    """Cold-start the agent against the emulators twice (a job each), measure, stop."""
    files = f"127.0.0.1:{PORTS['files']}"
    world = await start_world(
        attributes={
            "notraining-idle-timeout": "1h",
            "notraining-allowed-url-hosts": files,
            "notraining-port": str(AGENT_PORT),
        },
        shutdown_grace="1h",
    )
    auth = world.saturno_token(exp=int(time.time()) + 3600)
    figures: Figures = {}
    try:
        for slow in (False, True):
            state = tmp / f"ours-{number}-{int(slow)}" / "state"
            agent = AgentProcess(world.agent_env(state))
            try:
                started = time.time()
                await agent.start()

                def authenticated() -> bool:
                    try:
                        return client.request(AGENT_PORT, "GET", "/status", None, auth) == 200
                    except OSError:
                        return False

                first = await poll(authenticated, START_LIMIT) - started
                start_cpu = client.cpu_seconds([agent.pid])
                registers = await world.saturno.wait_for("register", count=1 + slow, timeout=30)
                body = job(f"big-{number}-{int(slow)}", big=True, slow=slow)
                if not slow:
                    figures["first_200_s"] = first
                    figures["start_cpu_s"] = start_cpu
                    figures["boot_report_s"] = registers[-1].received_at - started
                    await asyncio.sleep(IDLE_SECONDS)
                    figures["idle_rss"], figures["idle_pss"], _ = client.memory_mib([agent.pid])
                cpu_before = client.cpu_seconds([agent.pid])
                posted = time.time()
                code, post_ms = await asyncio.to_thread(post_job, AGENT_PORT, body, auth)
                assert code == 200, f"the agent answered {code} to the big job"  # noqa: S101
                done = await world.saturno.wait_for("done", count=1 + slow, timeout=JOB_LIMIT)
                report = done[-1]
                assert report.body["status"] == "done", report.body  # noqa: S101
                took = report.received_at - posted
                if slow:
                    figures["job_slow_s"] = took
                    continue
                figures["job_cpu_s"] = client.cpu_seconds([agent.pid]) - cpu_before
                figures["end_rss"], figures["end_pss"], _ = client.memory_mib([agent.pid])
                figures |= {"job_s": took, "post_ms": post_ms}
                c1 = await run_load(AGENT_PORT, requests, 1, body, auth)
                c8 = await run_load(AGENT_PORT, requests, 8, body, auth)
                figures |= {"repost_p99_ms": c1["p99_ms"], "c8_rps": c8["rps"]}
                figures["fsync_ms"] = await asyncio.to_thread(durable_write_ms, state)
            finally:
                await agent.close()
    finally:
        await world.close()
    return figures


# -- the table ----------------------------------------------------------------------------

ROWS = [  # key, label, format, goal (ours), lower is better
    ("first_200_s", "launch → first authenticated 200, s", "{:.3f}", 0.35, True),
    ("boot_report_s", "launch → boot report at Saturno, s", "{:.3f}", 0.35, True),
    ("start_cpu_s", "CPU time, launch → first 200, s (all processes)", "{:.2f}", None, True),
    ("idle_rss", "idle RSS, all processes, MiB", "{:.1f}", 45, True),
    ("idle_pss", "idle PSS, all processes, MiB", "{:.1f}", None, True),
    ("post_ms", "POST accepting the job (durable), ms", "{:.1f}", 4, True),
    ("fsync_ms", "of which the disk: one atomic write (2 fsyncs), ms", "{:.1f}", None, True),
    ("repost_p99_ms", "re-post of the job, 1 client, p99 ms", "{:.2f}", 2, True),
    ("c8_rps", "8 clients, req/s", "{:,.0f}", None, False),
    ("job_s", "**job, loopback: POST → end report, s**", "{:.3f}", 0.10, True),
    ("job_cpu_s", "CPU time of that job, s (all processes)", "{:.3f}", None, True),
    ("job_slow_s", "job, +50 ms per file request, s", "{:.3f}", 0.45, True),
    ("end_rss", "RSS when the job ends, MiB", "{:.1f}", 55, True),
]


def table(legacy: list[Figures], ours: list[Figures]) -> str:
    """The issue's table, medians over the rounds, with a ratio (how many times better)."""
    lines = [
        "| figure | legacy | ours | ratio | goal | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for key, label, fmt, goal, lower in ROWS:
        olds = [f[key] for f in legacy if key in f]
        old = statistics.median(olds) if olds else None
        new = statistics.median(f[key] for f in ours)
        ratio = "" if old is None else f"{(old / new if lower else new / old):.1f}×"
        if key == "c8_rps":
            goal_text, met = "≥ 5× legacy", old is not None and new >= 5 * old
        else:
            goal_text = "" if goal is None else f"≤ {goal:g}"
            met = goal is not None and new <= goal
        mark = "yes" if met else ("" if not goal_text else "no")
        shown_old = "—" if old is None else fmt.format(old)
        lines.append(
            f"| {label} | {shown_old} | {fmt.format(new)} | {ratio} | {goal_text} | {mark} |"
        )
    return "\n".join(lines)


def load_average() -> str:
    """The host's 1/5/15-minute load average and runnable tasks, from /proc/loadavg."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:4])


def record(label: str, text: str) -> None:
    """Put ``text`` between this label's markers in bench/RESULTS.md (appended the first time)."""
    begin, end = f"<!-- legacy:{label} -->", f"<!-- /legacy:{label} -->"
    current = RESULTS.read_text(encoding="utf-8")
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(current, encoding="utf-8")


def use_agent_from(commit: str, folder: Path) -> str:
    """Export ``agent/`` at ``commit`` into ``folder`` and make agent processes import it."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "agent"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    os.environ["PYTHONPATH"] = str(folder / "agent")  # AgentProcess passes os.environ on
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


async def main(
    rounds: int, requests: int, label: str, legacy_on: bool, agent_commit: str | None
) -> None:
    """Alternate the sides ``rounds`` times, print the table and record it."""
    busy = [name for name, port in PORTS.items() if port_open(port)] + (
        ["agent"] if port_open(AGENT_PORT) else []
    )
    if busy:
        raise SystemExit(f"bench/legacy.py: ports in use ({', '.join(busy)}): stop what holds them")
    if legacy_on:
        prepare(find_reproduction())
    fixtures = CACHE / "data" / "files"
    if not fixtures.exists():
        raise SystemExit("bench/legacy.py: no fixtures yet; run once without --ours-only")
    load_before = load_average()
    commit = subprocess.run(  # noqa: ASYNC221 - before anything runs
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    exported = tempfile.TemporaryDirectory()
    agent_at = (
        f"agent at {use_agent_from(agent_commit, Path(exported.name))}, " if agent_commit else ""
    )
    files_server = subprocess.Popen(  # noqa: ASYNC220 - lives for the whole run
        [sys.executable, client.__file__, "files", str(PORTS["files"]), str(fixtures)]
    )
    legacy: list[Figures] = []
    ours: list[Figures] = []
    began = time.monotonic()
    try:
        wait_port(PORTS["files"], 10)
        saturno = None
        if legacy_on:
            saturno = subprocess.Popen(  # noqa: ASYNC220 - lives for the whole run
                [str(CACHE / ".venv/bin/python"), "fakes/saturno.py", str(PORTS["saturno"])],
                cwd=CACHE,
            )
            wait_port(PORTS["saturno"], 10)
        with tempfile.TemporaryDirectory() as tmp:
            for number in range(rounds):
                if legacy_on:
                    legacy.append(await legacy_round(number, requests))
                    print(f"round {number + 1} legacy: {_short(legacy[-1])}", flush=True)
                ours.append(await ours_round(number, requests, Path(tmp)))
                print(f"round {number + 1} ours:   {_short(ours[-1])}", flush=True)
    finally:
        files_server.terminate()
        files_server.wait(10)
        if legacy_on and saturno is not None:
            saturno.terminate()
            saturno.wait(10)
        exported.cleanup()
    text = "\n".join(
        [
            f"`bench/legacy.py --rounds {rounds} --requests {requests}` at commit {commit} "
            f"({agent_at}label {label}): "
            f"medians of {rounds} cold starts per side, {time.monotonic() - began:.0f} s in all. "
            f"Load average (1, 5, 15 min, runnable/total) before: {load_before}; "
            f"after: {load_average()}. {os.cpu_count()} CPUs, Python {sys.version.split()[0]}.",
            "",
            table(legacy, ours),
        ]
    )
    print()
    print(text)
    record(label, text)


def _short(figures: Figures) -> str:
    return ", ".join(f"{key}={value:.3g}" for key, value in figures.items())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold starts per side")
    parser.add_argument("--requests", type=int, default=500, help="requests per load phase")
    parser.add_argument("--label", default="after", help="which RESULTS.md section to write")
    parser.add_argument("--ours-only", action="store_true", help="skip the legacy side")
    parser.add_argument("--agent-commit", help="run the agent's code as of this git commit")
    options = parser.parse_args()
    asyncio.run(
        main(
            options.rounds,
            options.requests,
            options.label,
            not options.ours_only,
            options.agent_commit,
        )
    )
