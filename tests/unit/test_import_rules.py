"""The package's import rules (docs/architecture.md): which sub-package may import which.

Read from the source with ``ast``, so a forbidden import fails here even when it sits
inside a function. The rules keep the seams honest: a processor knows nothing of the
VM, the HTTP surface cannot reach the GCE clients, leaf helpers import nothing of ours,
and nothing in the product imports the test kit.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import notraining_agent
import pytest

PACKAGE = Path(notraining_agent.__file__).parent
ROOT = "notraining_agent"

# What each part may import besides itself. ``life.states`` (the agent and job states and
# the JobDesk seam between the receiver and the lifecycle) is the one module of ``life``
# that other parts may name; the rest of ``life`` is the top of the graph, below ``cli``.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "util": frozenset(),
    "logs": frozenset({"util"}),  # the formatter scrubs URLs with the shared rule
    "config": frozenset({"errors"}),
    "gce": frozenset({"errors", "util"}),
    "processors": frozenset({"errors", "util", "job"}),
    "job": frozenset({"errors", "util", "config", "processors", "life.states"}),
    "http": frozenset({"errors", "util", "config", "job", "life.states"}),
    "host": frozenset({"errors", "util", "config", "gce", "job", "life.states"}),
    "life": frozenset(
        {"(root)", "errors", "util", "logs", "config", "gce", "job", "processors", "http", "host"}
    ),
    "cli": frozenset({"(root)", "errors", "util", "logs", "config", "life", "processors"}),
    "__main__": frozenset({"cli"}),
    "__init__": frozenset(),
}
# The one place the product names the test kit: ``notraining-agent demo``, behind an
# ImportError that tells the user how to install it.
TESTKIT_IMPORTERS = frozenset({"cli/main.py"})


def part_of(rel: str) -> str:
    """The sub-package (or top-level module) of a source file, from its path in the package."""
    first, _, rest = rel.partition("/")
    return first if rest else first.removesuffix(".py")


def target_of(module: str) -> str | None:
    """The part an absolute import names: ``life.states`` kept apart from the rest of life."""
    if module == ROOT:
        return "(root)"
    if not module.startswith(ROOT + "."):
        return None
    parts = module.split(".")[1:]
    if not (PACKAGE / parts[0]).is_dir() and not (PACKAGE / f"{parts[0]}.py").exists():
        return "(root)"  # a name the package's __init__ defines, such as agent_version
    if parts[0] == "life" and len(parts) > 1 and parts[1] == "states":
        return "life.states"
    return parts[0]


def imports_of(rel: str, text: str) -> Iterator[tuple[int, str]]:
    """Every absolute module name the source imports, with its line; relative ones resolved."""
    package = ".".join((ROOT, *rel.split("/")[:-1]))
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # ``from notraining_agent.life import states``
                yield node.lineno, f"{module}.{alias.name}"


def violations(rel: str, text: str) -> list[str]:
    """The imports of the source at ``rel`` (a path in the package) that its part may not make."""
    part = part_of(rel)
    found = []
    for line, module in imports_of(rel, text):
        if module.split(".")[0] == "notraining_testkit" and rel not in TESTKIT_IMPORTERS:
            found.append(f"{rel}:{line} imports the test kit ({module})")
        target = target_of(module)
        if target is None or target.split(".")[0] == part:
            continue
        allowed = ALLOWED[part]
        if target in allowed or (target == "life.states" and "life" in allowed):
            continue
        found.append(f"{rel}:{line} {part} may not import {target} ({module})")
    return found


SOURCES = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py"))


def test_every_part_has_a_rule() -> None:
    """A new sub-package cannot slip past the rules: each one has an entry in ALLOWED."""
    assert {part_of(rel) for rel in SOURCES} <= set(ALLOWED)


@pytest.mark.parametrize("rel", SOURCES)
def test_module_keeps_the_import_rules(rel: str) -> None:
    """Each module imports only what its part may: see docs/architecture.md."""
    assert violations(rel, (PACKAGE / rel).read_text(encoding="utf-8")) == []


def test_a_processor_importing_the_lifecycle_is_caught() -> None:
    """The checker itself: a processor that imports the lifecycle is reported."""
    found = violations("processors/probe.py", "from notraining_agent.life import lifecycle\n")
    assert found == [
        "processors/probe.py:1 processors may not import life (notraining_agent.life)",
        "processors/probe.py:1 processors may not import life (notraining_agent.life.lifecycle)",
    ]


def test_the_receiver_importing_a_gce_client_is_caught() -> None:
    """The checker itself: the HTTP surface reaching for the Compute client is reported."""
    found = violations("http/probe.py", "from notraining_agent.gce.compute import can_self_stop\n")
    assert found[0] == "http/probe.py:1 http may not import gce (notraining_agent.gce.compute)"


def test_the_product_importing_the_test_kit_is_caught() -> None:
    """The checker itself: only the demo command may name the test kit."""
    found = violations("job/probe.py", "import notraining_testkit.emulators\n")
    assert found == ["job/probe.py:1 imports the test kit (notraining_testkit.emulators)"]
