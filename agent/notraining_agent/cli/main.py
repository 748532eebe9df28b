"""The ``notraining-agent`` command: run, check-config, submit, status, demo, match."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from notraining_agent import agent_version, logs
from notraining_agent.errors import EXIT_CONFIG, EXIT_UNEXPECTED, AgentError
from notraining_agent.util import tlsdefer

log = logging.getLogger("notraining_agent")

_EPILOG = """exit codes: 0 normal end (VM stopped, SIGTERM, or nothing to stop);
1 unexpected error; 2 configuration error; 3 the VM could not be stopped"""


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML config file (default: /etc/notraining-agent/config.yaml when it exists)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="assignments",
        help="set a config key; beats every other source; repeatable",
    )


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for: not on every daemon start."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        print(f"{parser.prog} {agent_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with a subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="notraining-agent",
        description="Boot-to-shutdown job agent for GCE: register with Saturno, take one "
        "NoTraining job, report it, and make sure the VM stops.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="the daemon: boot report, receiver, one job, end report, stop the VM",
        description="Run the agent until its one job is reported and the VM is stopped. "
        "Logs are JSON lines on stdout.",
        epilog=_EPILOG,
    )
    _config_options(run)

    check = sub.add_parser(
        "check-config",
        help="print the effective config and where each value came from (secrets masked)",
        description="Load the config from every source as `run` would and print it; "
        "exit 2 when a value is invalid.",
    )
    _config_options(check)
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")

    submit = sub.add_parser(
        "submit",
        help="POST a job to an agent the way Saturno does",
        description="Send a job (the receiver's JSON body) to an agent, form-encoded like "
        "the seed's Saturno unless --json.",
    )
    submit.add_argument("file", help="job JSON file, or - for stdin")
    submit.add_argument("--url", required=True, help="the agent's base URL, e.g. http://10.0.0.5")
    submit.add_argument(
        "--token",
        default=os.environ.get("NOTRAINING_SUBMIT_TOKEN"),
        help="Authorization header value (default: $NOTRAINING_SUBMIT_TOKEN)",
    )
    submit.add_argument("--json", action="store_true", help="send JSON instead of a form")

    status = sub.add_parser("status", help="GET /status from an agent")
    status.add_argument("--url", required=True, help="the agent's base URL")
    status.add_argument("--token", default=os.environ.get("NOTRAINING_SUBMIT_TOKEN"))

    demo = sub.add_parser(
        "demo",
        help="the whole lifecycle on this machine, against local emulators",
        description="Start emulators of the metadata server, Saturno, the Compute API, Secret "
        "Manager and an art server; run the agent as a subprocess against them; post a job; "
        "print the timeline.",
    )
    demo.add_argument("--workdir", type=Path, help="where to keep state and results")
    demo.add_argument("--arts", type=int, default=6, help="how many arts the package holds")

    from notraining_agent.cli import match as match_cli  # noqa: PLC0415 - imports no vision library until it runs

    match_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except AgentError as exc:
        print(f"notraining-agent: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        log.exception("unexpected error")
        print(f"notraining-agent: unexpected error: {exc!r}", file=sys.stderr)
        return EXIT_UNEXPECTED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        _import_jwt_for_hs256_only()
        tlsdefer.import_aiohttp()  # before anything imports aiohttp the usual way
        from notraining_agent.life import daemon  # noqa: PLC0415 - each command imports only what it needs

        logs.setup()
        return asyncio.run(daemon.run(args.config, args.assignments, os.environ))
    if args.command == "check-config":
        return asyncio.run(_check_config(args))
    if args.command in ("submit", "status"):
        text = ""
        if args.command == "submit":
            text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        return asyncio.run(_client(args, text))
    if args.command == "demo":
        try:
            from notraining_testkit.demo import run_demo  # noqa: PLC0415 - a separate distribution
        except ImportError:
            print(
                "notraining-agent: the demo lives in the test kit; install it with "
                "`pip install notraining-agent-testkit` (or `make demo` in the repository)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        return asyncio.run(run_demo(workdir=args.workdir, arts=args.arts))
    if args.command == "match":
        from notraining_agent.cli import match as match_cli  # noqa: PLC0415

        return int(match_cli.run(args))
    raise AssertionError(args.command)


def _import_jwt_for_hs256_only() -> None:
    """Import PyJWT without ``cryptography``: 9 MiB and a tenth of a second saved at start.

    PyJWT loads ``cryptography`` only for its RSA, EC and EdDSA algorithms, and falls
    back to the HMAC ones when it is missing. The agent accepts and signs HS256 only
    (contract section 4), so the daemon hides ``cryptography`` while PyJWT is first
    imported; anything imported later (google-auth at stop time) gets it normally.
    """
    if "jwt" in sys.modules or "cryptography" in sys.modules:
        return
    sys.modules["cryptography"] = None  # type: ignore[assignment]  # None: the import raises
    try:
        import jwt  # noqa: F401, PLC0415 - the point of this function
    finally:
        del sys.modules["cryptography"]


async def _check_config(args: argparse.Namespace) -> int:
    import aiohttp  # noqa: PLC0415

    from notraining_agent.life.startup import load  # noqa: PLC0415

    logs.setup(logging.WARNING, sys.stderr)
    async with aiohttp.ClientSession() as session:
        start = await load(args.config, args.assignments, os.environ, session)
    if start.metadata is not None:
        await start.metadata.close()
    shown = start.loaded.masked()
    if args.json:
        print(json.dumps({k: {"value": v, "source": s} for k, (v, s) in shown.items()}, indent=2))
        return 0
    width = max(len(key) for key in shown)
    mode = "local mode (not on GCE)" if start.loaded.local_mode else f"GCE VM {start.instance.name}"
    print(f"# {mode}")
    for key, (value, source) in shown.items():
        print(f"{key:<{width}} = {value:<40} # {source}")
    return 0


async def _client(args: argparse.Namespace, job_text: str) -> int:
    from notraining_agent.cli import submit  # noqa: PLC0415

    if not args.token:
        print("notraining-agent: give --token or set NOTRAINING_SUBMIT_TOKEN", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "status":
        answer = await submit.get_status(args.url, authorization=args.token)
    else:
        answer = await submit.submit(
            args.url, submit.load_job(job_text), authorization=args.token, as_json=args.json
        )
    print(json.dumps({"status": answer.status, "body": answer.body}, indent=2))
    return 0 if 200 <= answer.status < 300 else 1


def console() -> None:
    """The console script: exit with :func:`main`'s code."""
    sys.exit(main())
