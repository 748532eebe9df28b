"""The boot scenarios: each boots the guest once and passes only on what is seen from
outside (emulator requests, the serial console, qemu's exit)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.boot import probes
from tests.boot.cache import Image
from tests.boot.guest import Guest, GuestSpec
from tests.boot.release import Release
from tests.boot.render import Renderer, with_runcmd
from tests.boot.world import BootWorld, guest_url, start_boot_world, wait_until

AGENT_PORT = 80  # the module's default notraining-port
BOOT_TIMEOUT = float(os.environ.get("NOTRAINING_BOOT_TIMEOUT", "1800"))  # kernel -> boot report
JOB_TIMEOUT = 300.0
OFF_TIMEOUT = 180.0  # the agent's end -> qemu gone
JSON_LINE = re.compile(r'^\{.*"event": ?"[a-z_]+".*\}$')


@dataclass
class Boot:
    """One booted guest and its world, handed to a scenario's body."""

    world: BootWorld
    guest: Guest
    outputs: dict[str, Any]
    host_port: int | None
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    async def unless_off(self, awaitable: Awaitable[T], what: str) -> T:
        """``awaitable``'s result; fails at once if the guest powers off first."""
        task = asyncio.ensure_future(awaitable)
        off = asyncio.ensure_future(self.guest.exited.wait())
        try:
            await asyncio.wait({task, off}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            off.cancel()
        if not task.done():
            task.cancel()
            raise AssertionError(f"the guest powered off before {what}")
        return task.result()

    async def boot_report(self) -> dict[str, Any]:
        """The first accepted boot report (waits for it)."""
        reports = await self.unless_off(
            self.world.saturno.wait_for("register", timeout=BOOT_TIMEOUT, accepted_only=True),
            "the boot report",
        )
        return dict(reports[0].body)

    async def end_report(self) -> tuple[dict[str, Any], float]:
        """The first end report and when it arrived."""
        reports = await self.unless_off(
            self.world.saturno.wait_for("done", timeout=JOB_TIMEOUT), "the end report"
        )
        return dict(reports[0].body), reports[0].received_at

    async def post_job(self, ntd: str) -> None:
        """POST a job as Saturno does, through the forwarded receiver port, with its JWT."""
        assert self.host_port is not None
        payload = self.world.art.job_payload(ntd, base_url=guest_url("art"))
        url = f"http://127.0.0.1:{self.host_port}/receiver_no_training/"
        headers = {"Authorization": self.world.token()}
        timeout = aiohttp.ClientTimeout(total=120)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=payload, headers=headers) as resp,
        ):
            body = await resp.text()
            if resp.status != 200:
                raise AssertionError(f"the receiver answered {resp.status}: {body}")

    def agent_json_lines(self) -> list[dict[str, Any]]:
        """The agent's JSON log lines as they reached the serial console."""
        found = []
        for line in self.guest.lines:
            text = line.text.strip()
            start = text.find('{"')
            if start < 0:
                continue
            candidate = text[start:]
            if JSON_LINE.match(candidate):
                try:
                    found.append(json.loads(candidate))
                except ValueError:
                    continue
        return found

    def require_json_logs(self, *events: str) -> None:
        """The agent's JSON lines are on the console, including these events."""
        seen = {line.get("event") for line in self.agent_json_lines()}
        if not seen:
            raise AssertionError("no JSON log line of the agent reached the serial console")
        missing = [e for e in events if e not in seen]
        if missing:
            raise AssertionError(
                f"events {missing} missing from the console; saw {sorted(map(str, seen))}"
            )

    async def powered_off(self, timeout: float = OFF_TIMEOUT) -> float:
        """Wait for qemu to exit by itself with status 0; return when it did."""
        code = await self.guest.wait_exit(timeout)
        if code != 0:
            raise AssertionError(f"qemu exited {code}")
        assert self.guest.exited_at is not None
        return self.guest.exited_at

    def no_restart(self) -> None:
        """systemd never scheduled a restart of the agent."""
        restarts = self.guest.find_all(r"notraining-agent\.service: Scheduled restart job")
        if restarts:
            raise AssertionError(f"the agent was restarted {len(restarts)} time(s)")


Body = Callable[[Boot], Awaitable[str]]
T = TypeVar("T")


@dataclass(frozen=True)
class Scenario:
    """A boot: module variables, test-only attributes and probes, and what to observe."""

    name: str
    suite: str
    body: Body
    variables: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    runcmd: tuple[str, ...] = ()
    inbound: bool = True
    slow_art: bool = False


def base_variables(release: Release) -> dict[str, Any]:
    """Module inputs every boot shares: the emulated Saturno, the release, the art host."""
    files = guest_url("files")
    return {
        "project_id": "demo-project",
        "saturno_source_ranges": ["169.254.169.2/32"],
        "register_url": guest_url("saturno") + "/register/",
        "done_url": guest_url("saturno") + "/done/",
        "agent_wheelhouse_url": f"{files}/dist/{release.wheelhouse.name}",
        "agent_wheelhouse_sha256": release.sha256,
        "allowed_url_hosts": [guest_url("art").removeprefix("http://")],
        "shutdown_grace": "1s",
    }


async def run_scenario(
    scenario: Scenario,
    *,
    image: Image,
    release: Release,
    renderer: Renderer,
    tls: Any,
    workdir: Path,
    accel: str,
    free_port: Callable[[], int],
    cpus: int = 2,
) -> Boot:
    """Boot once for ``scenario``; everything started here is stopped before returning."""
    outputs = await asyncio.to_thread(
        renderer.outputs, {**base_variables(release), **scenario.variables}
    )
    user_data = with_runcmd(outputs["user_data"], *scenario.runcmd)
    world = await start_boot_world(release, tls)
    guest: Guest | None = None
    stops: list[asyncio.Task[Any]] = []
    try:
        world.configure(outputs, user_data, scenario.attributes)
        if scenario.slow_art:
            world.art.throttle(40_000)
        host_port = free_port() if scenario.inbound else None
        spec = GuestSpec(
            kernel=image.file("vmlinuz"),
            initrd=image.file("initrd.img"),
            base_disk=image.file("rootfs.img"),
            workdir=workdir,
            guestfwd=world.host_ports(),
            hostfwd={host_port: AGENT_PORT} if host_port else {},
            accel=accel,
            cpus=cpus,
        )
        guest = Guest(spec)
        loop = asyncio.get_running_loop()

        def stop_as_gce(_name: str) -> None:
            # GCE stops a VM with the ACPI power button, then waits for it to go off.
            world.stop_calls.append(time.time())
            assert guest is not None
            stops.append(loop.create_task(guest.qmp("system_powerdown")))

        world.compute.on_stop = stop_as_gce
        await guest.start()
        boot = Boot(world, guest, outputs, host_port)
        detail = await scenario.body(boot)
        boot.notes.append(detail)
        return boot
    finally:
        if guest is not None:
            await guest.close()
        for task in stops:
            task.cancel()
        await world.close()


# -- the bodies ----------------------------------------------------------------------------


async def happy_http(boot: Boot) -> str:
    """1 (+6): boot report, JWT job through the forwarded port, done, stop -> ACPI -> off."""
    report = await boot.boot_report()
    if report.get("port") != AGENT_PORT:
        raise AssertionError(f"boot report port {report.get('port')}, expected {AGENT_PORT}")
    # The live hardening probe (6) reads the idle agent; the job waits for it, so the
    # power-off cannot cut it short.
    await boot.guest.wait_line(r"BOOTTEST hardening done", JOB_TIMEOUT)
    await boot.post_job("ntd-boot-1")
    end, end_at = await boot.end_report()
    if (end.get("status"), end.get("ntd_transaction_id")) != ("done", "ntd-boot-1"):
        raise AssertionError(f"end report {end}")
    await boot.unless_off(
        wait_until(lambda: bool(boot.world.stop_calls), JOB_TIMEOUT, "the stop call"),
        "the agent's stop call reached the Compute emulator",
    )
    off = await boot.powered_off()
    boot.no_restart()
    if not boot.world.secrets.calls:
        raise AssertionError("the agent never read its JWT secret from Secret Manager")
    boot.require_json_logs("listening", "job_started", "job_finished")
    hardening(boot)
    figures(boot)
    return (
        f"done at +{end_at - boot.guest.started_at:.0f}s, stop call -> off "
        f"{off - boot.world.stop_calls[0]:.0f}s"
    )


def hardening(boot: Boot) -> None:
    """6: the probe's lines: exposure <= 2.0, the agent's user, writable paths."""
    guest = boot.guest
    if guest.find(r"BOOTTEST hardening done") is None:
        raise AssertionError("the hardening probe did not finish before power-off")
    overall = guest.find(r"BOOTTEST security .*Overall exposure level")
    if overall is None:
        raise AssertionError("systemd-analyze security printed no overall exposure")
    exposure = float(re.search(r"exposure level for \S+: ([0-9.]+)", overall.text).group(1))  # type: ignore[union-attr]
    if exposure > 2.0:
        raise AssertionError(f"exposure {exposure} > 2.0: {overall.text}")
    who = guest.find(r"BOOTTEST agent uid=")
    assert who is not None
    uid = int(re.search(r"uid=(\d+)", who.text).group(1))  # type: ignore[union-attr]
    if uid == 0:
        raise AssertionError(f"the agent runs as root: {who.text}")
    state = ("/var/lib/notraining-agent", "/var/lib/private/notraining-agent")
    allowed = ("/tmp", "/var/tmp", *state)
    writable = [
        line.text.split("BOOTTEST writable ", 1)[1]
        for line in guest.find_all(r"BOOTTEST writable ")
    ]
    stray = [p for p in writable if not p.startswith(allowed)]
    if stray or not any(p.startswith(state) for p in writable):
        raise AssertionError(
            f"writable beyond the state directory: {stray[:10]} (all: {writable[:10]})"
        )
    boot.figures["exposure"] = exposure
    rss = guest.find(r"BOOTTEST rss_kb=\d+")
    if rss is not None:
        boot.figures["rss_mb"] = int(rss.text.rsplit("=", 1)[1]) / 1024
    boot.notes.append(
        f"exposure {exposure}, uid {uid}, writable {sorted(set(p.split('/')[1] for p in writable))}"
    )


def figures(boot: Boot) -> None:
    """Scenario 1's timings, all read from outside the guest."""
    guest = boot.guest
    kernel = guest.find(r"Linux version")
    multi = guest.find(r"Reached target.*(Multi-User System|multi-user\.target)")
    starting = guest.find(r"Starting.*notraining-agent")
    ready = guest.find(r"Started.*notraining-agent\.service|Started notraining-agent")
    report = boot.world.saturno.reports_for("register")[0].received_at
    first_file = boot.world.files.requests[0][0] if boot.world.files.requests else None
    if kernel is None or multi is None or ready is None or starting is None or first_file is None:
        raise AssertionError("a timing mark is missing from the console or the file server")
    k = kernel.at
    boot.figures.update(
        multi_user_s=multi.at - k,
        ready_s=ready.at - k,
        boot_report_s=report - k,
        install_s=starting.at - first_file,
        share=(report - multi.at) / (multi.at - k),
    )


async def pull_poweroff(boot: Boot) -> str:
    """2: the job as attribute notraining-job, no inbound port; the clean exit powers off."""
    await boot.boot_report()
    job = boot.world.art.job_payload("ntd-pull", base_url=guest_url("art"))
    boot.world.metadata.set_instance_attribute("notraining-job", json.dumps(job))
    end, _ = await boot.end_report()
    if (end.get("status"), end.get("ntd_transaction_id")) != ("done", "ntd-pull"):
        raise AssertionError(f"end report {end}")
    await boot.powered_off()
    if boot.world.compute.calls_for("stop"):
        raise AssertionError("the agent called the Compute API although self_stop is poweroff")
    boot.require_json_logs("job_started", "job_finished")
    boot.no_restart()
    exited = boot.guest.find(r"notraining-agent\.service: (Deactivated successfully|Succeeded)")
    return "systemd powered off after a clean exit" + ("" if exited else " (no 'Deactivated' line)")


async def preemption(boot: Boot) -> str:
    """3: preempted=TRUE and the ACPI power button mid-job; the report comes before off."""
    await boot.boot_report()
    await boot.post_job("ntd-preempt")
    await boot.guest.wait_line(r'"event": ?"job_started"', JOB_TIMEOUT)
    boot.world.metadata.set_preempted(True)
    await boot.guest.qmp("system_powerdown")
    end, end_at = await boot.end_report()
    off = await boot.powered_off()
    if end.get("status") != "preempted":
        raise AssertionError(f"end report {end}")
    if end_at >= off:
        raise AssertionError("the preempted report arrived after the guest was off")
    return f"preempted report {off - end_at:.1f}s before power-off"


async def hung_agent(boot: Boot) -> str:
    """4: the agent frozen after its boot report; the dead-man's timer powers off."""
    await boot.boot_report()
    boot.world.metadata.set_instance_attribute("boot-test-freeze", "1")
    await boot.guest.wait_line(r"BOOTTEST boot-test-freeze", JOB_TIMEOUT)
    deadman = await boot.guest.wait_line(
        r"dead-man's switch: the agent's time is up", float(boot.outputs["deadman_seconds"]) + 120
    )
    await boot.powered_off()
    if boot.world.saturno.reports_for("done"):
        status = boot.world.saturno.reports_for("done")[0].body.get("status")
        boot.notes.append(f"end report {status} on the way down")
    fired = deadman.at - boot.guest.started_at
    restarts = len(boot.guest.find_all(r"notraining-agent\.service: Scheduled restart job"))
    return (
        f"dead-man fired at +{fired:.0f}s (deadline {boot.outputs['deadman_seconds']}s), "
        f"after {restarts} watchdog/start-timeout restart(s) of the frozen agent"
    )


async def bad_port(boot: Boot) -> str:
    """5: notraining-port out of range: exit 2, one line naming it, off without a retry."""
    line = await boot.guest.wait_line(r"notraining-port", BOOT_TIMEOUT)
    await boot.powered_off()
    reasons = boot.guest.find_all(r"notraining-port")
    if len(reasons) != 1:
        raise AssertionError(f"{len(reasons)} console lines name notraining-port, expected one")
    boot.no_restart()
    status = boot.guest.find(r"notraining-agent\.service: Main process exited.*status=2")
    if status is None:
        raise AssertionError("no 'status=2' exit of the agent on the console")
    if boot.world.saturno.reports_for("register"):
        raise AssertionError("a misconfigured agent sent a boot report")
    return f"console: {line.text.strip()[:120]}"


async def kill_once(boot: Boot) -> str:
    """SIGKILL once mid-job; systemd restarts the agent and the job ends done."""
    await boot.boot_report()
    await boot.post_job("ntd-kill")
    await boot.guest.wait_line(r'"event": ?"job_started"', JOB_TIMEOUT)
    boot.world.metadata.set_instance_attribute("boot-test-kill", "1")
    await boot.guest.wait_line(r"BOOTTEST boot-test-kill", JOB_TIMEOUT)
    end, _ = await boot.end_report()
    await boot.powered_off()
    restarts = boot.guest.find_all(r"notraining-agent\.service: Scheduled restart job")
    if end.get("status") != "done" or len(restarts) != 1:
        raise AssertionError(f"end report {end}, restarts {len(restarts)}")
    if boot.world.compute.calls_for("stop"):
        raise AssertionError("the agent called the Compute API although self_stop is poweroff")
    return "restarted once, job done, the clean exit powered off"


async def crash_loop(boot: Boot) -> str:
    """Trixie: the agent killed every time it runs; the start limit powers the guest off."""
    await boot.boot_report()
    boot.world.metadata.set_instance_attribute("boot-test-crash-loop", "1")
    await boot.powered_off(timeout=600)
    kills = boot.guest.find_all(r"BOOTTEST killed the agent")
    restarts = boot.guest.find_all(r"notraining-agent\.service: Scheduled restart job")
    if len(restarts) < 2:
        raise AssertionError(
            f"powered off after {len(kills)} kill(s) and {len(restarts)} "
            "restart(s): a crash did not restart the agent"
        )
    return f"{len(kills)} kills, {len(restarts)} restarts, then power-off"


__all__ = ["Boot", "Scenario", "probes"]
