"""What the idle agent has loaded: only what the receiver and the boot report need (issue 12)."""

from __future__ import annotations

from pathlib import Path

from notraining_testkit.emulators.suite import World

from tests.integration.conftest import AgentFactory, boot

# Compiled parts mapped into the process betray a package that pure-Python checks cannot.
NOT_WHILE_IDLE = {
    "cryptography": "_rust.abi3.so",  # PyJWT's asymmetric algorithms, google-auth
    "Pillow": "PIL/_imaging",  # the manifest reads headers itself
    "PyYAML": "yaml/_yaml",  # only a config file needs it
    "google-cloud-compute (grpc)": "grpc/_cython",  # only stopping the VM needs it
}


def mapped_files(pid: int) -> str:
    """Every file mapped into ``pid``, one per line, from /proc."""
    return Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")


async def test_idle_agent_maps_no_crypto_imaging_yaml_or_grpc(
    world: World, agents: AgentFactory
) -> None:
    """After the boot report, none of the heavy libraries the first request does not need is in."""
    agent = agents()
    await boot(world, agent)
    await agent.wait_for_log(lambda line: line.get("message") == "state registering -> idle", 30)
    maps = mapped_files(agent.pid)
    loaded = [name for name, marker in NOT_WHILE_IDLE.items() if marker in maps]
    assert not loaded, f"loaded while idle: {loaded}"
