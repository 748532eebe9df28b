"""Test-only additions to the user-data: shell run by runcmd after the recipe's own steps.

Each probe prints ``BOOTTEST ...`` lines on the serial console, where the harness reads
them; the harness steers the ones that act (freeze, kill) through a metadata attribute
it sets when it has seen, from outside, the moment to act.
"""

from __future__ import annotations

MD = "http://169.254.169.254/computeMetadata/v1/instance/attributes"
UNIT = "notraining-agent.service"

WAIT_ACTIVE = (
    f"i=0; until systemctl is-active -q {UNIT}; do i=$((i+1)); "
    '[ "$i" -gt 900 ] && exit 0; sleep 1; done'
)


def after_attribute(name: str, command: str) -> str:
    """Run ``command`` once the harness sets instance attribute ``name``."""
    return (
        f"until curl -fsS -o /dev/null -H 'Metadata-Flavor: Google' {MD}/{name}; do sleep 2; "
        f"done; echo 'BOOTTEST {name}' >/dev/console; {command}"
    )


# Scenario 6, live: the unit's exposure, the process's user, RSS, and which files and
# directories it may write (sockets such as the journal's are writable by design).
HARDENING = (
    WAIT_ACTIVE + "; "
    f"pid=$(systemctl show -p MainPID --value {UNIT}); "
    "uid=$(awk '/^Uid:/{print $2}' /proc/$pid/status); "
    "gid=$(awk '/^Gid:/{print $2}' /proc/$pid/status); "
    "{ echo \"BOOTTEST rss_kb=$(awk '/^VmRSS:/{print $2}' /proc/$pid/status)\"; "
    'echo "BOOTTEST agent uid=$uid user=$(getent passwd $uid | cut -d: -f1) '
    f"unit_user=$(systemctl show -p User --value {UNIT}) "
    f'dynamic=$(systemctl show -p DynamicUser --value {UNIT})"; '
    f"systemd-analyze security --no-pager {UNIT} 2>&1 | sed 's/^/BOOTTEST security /'; "
    "nsenter -t $pid -m -S $uid -G $gid find / /var/lib/notraining-agent/ "
    "\\( -path /proc -o -path /sys -o -path /dev \\) -prune -o "
    "\\( -type f -o -type d \\) -writable -print 2>/dev/null "
    "| sed 's/^/BOOTTEST writable /'; "
    "echo 'BOOTTEST hardening done'; } >/dev/console 2>&1"
)

# Scenario 4: freeze the agent once the harness has seen the boot report; keep it frozen
# (the watchdog's SIGKILL and restart would otherwise revive it) so the dead-man acts.
FREEZE = after_attribute(
    "boot-test-freeze",
    f"while :; do systemctl kill -s SIGSTOP {UNIT} 2>/dev/null; sleep 2; done",
)

# Trixie: kill the agent once mid-job (SIGKILL: a crash, not a clean stop).
KILL_ONCE = after_attribute("boot-test-kill", f"systemctl kill -s SIGKILL {UNIT}")

# Trixie: kill the agent every time it runs: a crash loop.
CRASH_LOOP = after_attribute(
    "boot-test-crash-loop",
    f"while :; do if systemctl is-active -q {UNIT}; then systemctl kill -s SIGKILL {UNIT}; "
    "echo 'BOOTTEST killed the agent' >/dev/console; fi; sleep 1; done",
)
