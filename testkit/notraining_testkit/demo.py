"""``notraining-agent demo``: the whole lifecycle on this machine, printed as a timeline.

It starts the emulators (metadata server, Saturno, Compute API, Secret Manager,
art server), runs the real agent as a subprocess pointed at them, plays Saturno
(posts a package of generated art, form-encoded like the seed), and prints what
happens until the agent has asked the Compute API to stop the VM and exited.
With the ``vision`` extra installed the job runs the ``keypoints`` processor, and
the demo then matches a generated store photo against the enrolled package with
``notraining-agent match``, drawing what it found.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from notraining_agent.cli.submit import submit

from notraining_testkit.emulators.artgen import ArtPackage, generate_art, generate_package
from notraining_testkit.emulators.suite import AgentProcess, LogLine, World, start_world

DEMO_TIMEOUT = 120.0
_SHOWN_EVENTS = {
    "state",
    "job_accepted",
    "job_started",
    "stage",
    "download",
    "job_finished",
    "self_stop",
    "listening",
    "progress",
    "report",
}


class Timeline:
    """Prints ``+seconds  what  details`` lines, time counted from the demo's start."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def say(self, what: str, details: str = "") -> None:
        """One timeline line."""
        print(f"  +{time.monotonic() - self._start:6.2f}s  {what:<18} {details}", flush=True)

    def agent_line(self, line: LogLine) -> None:
        """Echo the agent's own log lines that tell the story."""
        event = line.get("event")
        if line.get("severity") in ("ERROR", "CRITICAL"):
            self.say("agent ERROR", str(line.get("message")))
        elif event in _SHOWN_EVENTS:
            self.say(f"agent {event}", str(line.get("message")))


async def run_demo(*, workdir: Path | None = None, arts: int = 6) -> int:
    """Run the demo; 0 when the agent went through every step and exited 0."""
    root = (workdir or Path(".demo")).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    timeline = Timeline()
    print(f"notraining-agent demo: everything runs on 127.0.0.1; files in {root}\n")
    world = await start_world(package=generate_package(arts, seed=2026), shutdown_grace="2s")
    processor = "keypoints" if _has_vision() else "manifest"
    agent = AgentProcess(world.agent_env(root / "state", processor=processor))
    agent.on_line = timeline.agent_line
    try:
        timeline.say("emulators up", ", ".join(f"{n}={s.url}" for n, s in world.servers.items()))
        await agent.start()
        timeline.say("agent started", f"pid {agent.pid}: python -m agent run ({processor})")
        return await _play_saturno(world, agent, timeline, root)
    finally:
        await agent.close()
        await world.close()


async def _play_saturno(world: World, agent: AgentProcess, timeline: Timeline, root: Path) -> int:
    boot = (await world.saturno.wait_for("register", timeout=DEMO_TIMEOUT))[0].body
    timeline.say("boot report", _fields(boot, "name", "ip", "port", "zone", "can_self_stop"))
    agent_url = f"http://127.0.0.1:{boot['port']}"
    token = world.saturno_token()
    job = world.art.job_payload("ntd-demo-1", base_url=world.url("art"))
    answer = await submit(agent_url, job, authorization=token)
    timeline.say("job posted", f"HTTP {answer.status} {json.dumps(answer.body)}")
    again = await submit(agent_url, job, authorization=token)
    timeline.say(
        "same job again", f"HTTP {again.status} {json.dumps(again.body)} (nothing runs twice)"
    )
    end = (await world.saturno.wait_for("done", timeout=DEMO_TIMEOUT))[0].body
    timeline.say("end report", _fields(end, "ntd_transaction_id", "status", "arts", "error"))
    code = await agent.wait(DEMO_TIMEOUT)
    stops = [
        call
        for call in world.compute.calls
        if call.method == "POST" and call.path.endswith("/stop")
    ]
    if stops:
        timeline.say(
            "stop request", f"POST {stops[0].path} with a bearer token from the metadata server"
        )
    timeline.say("agent exited", f"exit code {code}")
    manifest = _manifest(end)
    print()
    matched = True
    if manifest is not None:
        _print_manifest(manifest)
        sheet = manifest.parent / "contact-sheet.png"
        if sheet.exists():
            print(f"contact sheet (every art, its keypoints, recall and warning): {sheet}")
        if (manifest.parent / "index.npz").exists():
            matched = await _match_store_photo(world.art.package, manifest.parent, root)
    ok = code == 0 and end.get("status") == "done" and bool(stops) and matched
    print(
        f"\ndemo {'finished: every step happened' if ok else 'FAILED'}; state and results in {root}"
    )
    return 0 if ok else 1


def _has_vision() -> bool:
    return all(importlib.util.find_spec(name) for name in ("cv2", "numpy"))


def _print_manifest(manifest: Path) -> None:
    print(f"manifest: {manifest}")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    for art in data.get("arts", [])[:10]:
        if "features" in art:
            details = f"{art.get('features')} keypoints, recall {art.get('recall')}"
        else:
            details = f"{art.get('format')} {art.get('width')}x{art.get('height')}"
        print(f"  {art.get('name'):<14} {details}  sha256 {str(art.get('sha256'))[:16]}...")
    for warning in data.get("warnings", [])[:5]:
        print(f"  warning: {warning}")


async def _match_store_photo(package: ArtPackage, index_dir: Path, root: Path) -> bool:
    """Make a store photo with three of the arts and a foreign poster, and match it."""
    from notraining_testkit.scenes import make_scene  # noqa: PLC0415 - vision extra

    names = list(package.names)
    scene = make_scene(list(package.files.values()), 1, count=3, distractors=[generate_art(999)])
    photo, drawn = root / "store-photo.jpg", root / "store-photo-matched.png"
    photo.write_bytes(scene.photo)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notraining_agent",
        "match",
        "--index",
        str(index_dir),
        str(photo),
        "--draw",
        str(drawn),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(process.communicate(), DEMO_TIMEOUT)
    found = json.loads(output)["photos"][0].get("detections", [])
    shown = sorted(names[index] for index, _ in scene.truth)
    print(f"\nstore photo {photo} shows {', '.join(shown)} and a poster not in the package")
    for detection in found:
        print(
            f"  match: {detection['art']:<14} {detection['inliers']} inliers, "
            f"confidence {detection['confidence']}"
        )
    print(f"  drawn: {drawn}")
    return process.returncode == 0 and sorted(d["art"] for d in found) == shown


def _fields(body: dict[str, Any], *names: str) -> str:
    return " ".join(f"{name}={json.dumps(body.get(name))}" for name in names)


def _manifest(end: dict[str, Any]) -> Path | None:
    uri = end.get("output_uri")
    if not isinstance(uri, str) or not uri.startswith("file://"):
        return None
    path = Path(uri.removeprefix("file://")) / "manifest.json"
    return path if path.exists() else None
