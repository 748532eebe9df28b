"""One qemu guest: the serial console read line by line with host timestamps, QMP for the
power button, and a hard timeout. The guest sees only the forwards it is given.

Slirp with ``restrict=on`` cuts the guest off from everything, the host included; each
``guestfwd`` then opens exactly one way out (guest ``169.254.169.254:PORT`` to a host
loopback port, through one ``socat`` per connection), and each ``hostfwd`` one way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

GUEST_IP = "169.254.169.15"
SERVICE_IP = "169.254.169.254"
# The art server stands for a host in the VM's network; the agent refuses any job URL on
# the metadata server's address, so it gets its own.
ART_IP = "169.254.169.100"
# PID 1 logs to the kernel ring (so to the console) instead of the journal: its
# "Main process exited", "Scheduled restart job" lines are what the checks read.
KERNEL_APPEND = (
    "root=/dev/vda rw console=ttyS0 systemd.show_status=true systemd.log_target=kmsg "
    "printk.devkmsg=on"
)
# ANSI colour codes in systemd's status lines; the checks read plain text.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class ConsoleLine:
    """One line of the serial console and when the host read it (time.time())."""

    at: float
    text: str


@dataclass
class GuestSpec:
    """What a boot needs: the image files, where to keep the overlay, the forwards."""

    kernel: Path
    initrd: Path
    base_disk: Path
    workdir: Path
    guestfwd: Mapping[tuple[str, int], int]  # guest (IP, PORT) -> host 127.0.0.1:PORT
    hostfwd: Mapping[int, int] = field(default_factory=dict)  # host port -> guest port
    accel: str = "tcg"
    memory_mb: int = 2048
    cpus: int = 2


class Guest:
    """A running qemu; :meth:`close` kills it if still there, whatever happened."""

    def __init__(self, spec: GuestSpec) -> None:
        self.spec = spec
        self.lines: list[ConsoleLine] = []
        self.started_at = 0.0
        self.exited_at: float | None = None
        self.returncode: int | None = None
        self.on_line: Callable[[ConsoleLine], None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.exited = asyncio.Event()
        self._qmp_path = spec.workdir / "qmp.sock"
        self._console_log = spec.workdir / "console.log"

    def argv(self) -> list[str]:
        """The qemu command line."""
        spec = self.spec
        overlay = spec.workdir / "disk.qcow2"
        net = [
            "user,id=n0,net=169.254.169.0/24,host=169.254.169.2,dhcpstart=" + GUEST_IP,
            "restrict=on",
        ]
        for (guest_ip, guest_port), host_port in sorted(spec.guestfwd.items()):
            net.append(
                f"guestfwd=tcp:{guest_ip}:{guest_port}-cmd:socat STDIO TCP:127.0.0.1:{host_port}"
            )
        for host_port, guest_port in sorted(spec.hostfwd.items()):
            net.append(f"hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}")
        accel = ["-accel", "kvm", "-cpu", "host"] if spec.accel == "kvm" else ["-accel", "tcg"]
        if spec.accel != "kvm":
            accel += ["-cpu", "max"]
        return [
            "qemu-system-x86_64",
            *accel,
            "-smp",
            str(spec.cpus),
            "-m",
            str(spec.memory_mb),
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-smbios",
            "type=1,product=Google Compute Engine",
            "-kernel",
            str(spec.kernel),
            "-initrd",
            str(spec.initrd),
            "-append",
            KERNEL_APPEND,
            "-drive",
            f"file={overlay},if=virtio,format=qcow2",
            "-netdev",
            ",".join(net),
            "-device",
            "virtio-net-pci,netdev=n0",
            "-qmp",
            f"unix:{self._qmp_path},server=on,wait=off",
        ]

    async def start(self) -> None:
        """Make a fresh copy-on-write disk over the cached image and boot it."""
        for tool in ("qemu-system-x86_64", "qemu-img", "socat"):
            if shutil.which(tool) is None:
                raise RuntimeError(
                    f"{tool} is not on PATH: apt-get install qemu-system-x86 qemu-utils socat"
                )
        self.spec.workdir.mkdir(parents=True, exist_ok=True)
        overlay = self.spec.workdir / "disk.qcow2"
        overlay.unlink(missing_ok=True)
        made = await asyncio.create_subprocess_exec(
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(self.spec.base_disk),
            str(overlay),
        )
        if await made.wait() != 0:
            raise RuntimeError("qemu-img could not create the overlay disk")
        self.started_at = time.time()
        self._process = await asyncio.create_subprocess_exec(
            *self.argv(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=1 << 20,  # a console line can be long (a traceback in one JSON line)
        )
        self._reader = asyncio.create_task(self._read())
        self._watcher = asyncio.create_task(self._watch())

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with self._console_log.open("w", encoding="utf-8") as log:
            while True:
                raw = await self._process.stdout.readline()
                if not raw:
                    break
                text = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\r\n")
                line = ConsoleLine(time.time(), text)
                log.write(f"{line.at - self.started_at:9.3f} {text}\n")
                log.flush()
                self.lines.append(line)
                if self.on_line is not None:
                    self.on_line(line)
                async with self._changed:
                    self._changed.notify_all()

    async def _watch(self) -> None:
        # qemu's exit, apart from the console's EOF. Process.wait() also waits for every
        # pipe to close, and a relay or child still holding qemu's stdout would hide that
        # the guest is off (seen once: the harness waited on a powered-off guest), so
        # read the return code, which the child watcher sets at the exit itself.
        assert self._process is not None
        while self._process.returncode is None:  # noqa: ASYNC110 - no event for it exists
            await asyncio.sleep(0.5)
        self.returncode = self._process.returncode
        self.exited_at = time.time()
        self.exited.set()
        async with self._changed:
            self._changed.notify_all()

    @property
    def running(self) -> bool:
        """Whether qemu still runs."""
        return self.exited_at is None

    def find(self, pattern: str) -> ConsoleLine | None:
        """The first console line matching the regular expression, if any yet."""
        rx = re.compile(pattern)
        return next((line for line in self.lines if rx.search(line.text)), None)

    def find_all(self, pattern: str) -> list[ConsoleLine]:
        """Every console line matching the regular expression so far."""
        rx = re.compile(pattern)
        return [line for line in self.lines if rx.search(line.text)]

    async def wait_line(self, pattern: str, timeout: float) -> ConsoleLine:
        """The first line matching ``pattern``; fails if qemu exits or ``timeout`` passes."""
        rx = re.compile(pattern)
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for line in self.lines:
                    if rx.search(line.text):
                        return line
                if not self.running:
                    raise AssertionError(f"qemu exited before a console line matched {pattern!r}")
                await self._changed.wait()

    async def wait_exit(self, timeout: float) -> int:
        """qemu's exit status; kills it and fails when ``timeout`` passes first."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while self.running:
                    await self._changed.wait()
        except TimeoutError:
            await self.close()
            raise AssertionError(f"the guest was still running after {timeout:.0f} s") from None
        assert self.returncode is not None
        return self.returncode

    async def qmp(self, command: str) -> dict[str, object]:
        """Run one QMP command (``system_powerdown`` is the ACPI power button, as GCE sends)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(self._qmp_path)), 10
        )
        try:
            await asyncio.wait_for(reader.readline(), 10)  # the greeting
            for cmd in ("qmp_capabilities", command):
                writer.write(json.dumps({"execute": cmd}).encode() + b"\n")
                await writer.drain()
                while True:
                    answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
                    if "return" in answer or "error" in answer:
                        break
            return dict(answer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        """Kill qemu (and the socat relays it started) if it still runs."""
        process = self._process
        if process is not None:
            # The whole group, even after qemu's exit: socat relays must not outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, 9)
        for task in (self._watcher, self._reader):
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
        (self.spec.workdir / "disk.qcow2").unlink(missing_ok=True)
