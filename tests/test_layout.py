"""The package layout is the architecture: imports run one way, and no module imports another in a circle.

Layers, lowest first (a module may import only modules of its own layer or a lower one):

    core      small shared types (Event, Command, CommandRejected, HotlistMatch, PipelineStats), plate
              formats, clock, key files, redaction, atomic files; imports nothing above it
    config    the TOML's shape and files (imports core only: never the command machinery)
    sources   capture
    pipeline  the per-frame stages (motion, alpr, tracking, dedup, events)
    link      outbox, MQTT, health: the way out to the operations room
    commands  router, signing, hotlist, remote config: what the operations room sends in
    footage   recorder, clips, audit log, retention
    field     provision, doctor, preflight, systemd
    ops       the operations room's tools
    agent     wires the threads
    cli       the ``edge-agent`` command (``edge_agent.cli:main``) and ``python -m edge_agent``

Every import counts: at module level, inside functions, and under ``if TYPE_CHECKING:``. Importing
``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``; those count too, except the packages the
importing module is itself inside (their ``__init__`` is already running).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edge_agent"

LAYERS: dict[str, int] = {
    "edge_agent": 0,  # the package itself (__version__), matched exactly
    "edge_agent.core": 0,
    "edge_agent.config": 1,
    "edge_agent.sources": 2,
    "edge_agent.pipeline": 3,
    "edge_agent.link": 4,
    "edge_agent.commands": 5,
    "edge_agent.footage": 6,
    "edge_agent.field": 7,
    "edge_agent.ops": 8,
    "edge_agent.agent": 9,
    "edge_agent.cli": 10,
    "edge_agent.__main__": 10,
}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The edge_agent module that ``name`` (a module, or a name inside one) resolves to."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES:
            return candidate
    return None


def _imports(module: str) -> set[str]:
    """Every edge_agent module ``module`` imports, anywhere in its file."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in MODULES else base)
    found: set[str] = set()
    for target in targets:
        owner = _owner(target) if target.split(".")[0] == "edge_agent" else None
        if owner is None:
            continue
        found.add(owner)
        # The packages on the way run their __init__ first, unless the importer is already inside them.
        parts = owner.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if not (module == parent or module.startswith(parent + ".")):
                found.add(parent)
    found.discard(module)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> str:
    if module in LAYERS:
        return module
    parts = module.split(".")
    for i in range(len(parts) - 1, 1, -1):
        candidate = ".".join(parts[:i])
        if candidate in LAYERS:
            return candidate
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS in tests/test_layout.py")


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_import_cycles() -> None:
    # Depth-first search; a back edge closes a cycle, reported as the path around it.
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_run_down_the_layers() -> None:
    upward = []
    for module, deps in sorted(GRAPH.items()):
        mine = _layer(module)
        for dep in sorted(deps):
            theirs = _layer(dep)
            if LAYERS[theirs] > LAYERS[mine]:
                upward.append(f"{module} ({mine.removeprefix('edge_agent.')}, {LAYERS[mine]}) imports {dep} "
                              f"({theirs.removeprefix('edge_agent.')}, {LAYERS[theirs]})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_core_imports_only_core() -> None:
    for module, deps in GRAPH.items():
        if _layer(module) == "edge_agent.core":
            assert all(_layer(d) == "edge_agent.core" for d in deps), (module, sorted(deps))


def test_the_checks_see_imports_everywhere() -> None:
    # The graph includes imports inside functions and under TYPE_CHECKING: a check that missed them
    # would pass on a layout that cycles at run time.
    assert "edge_agent.config" in GRAPH["edge_agent.sources"]  # TYPE_CHECKING only
    assert "edge_agent.core.keys" in GRAPH["edge_agent.config"]  # inside a validator
    assert "edge_agent.agent" in GRAPH["edge_agent.cli"]  # inside a function


def test_console_script_is_cli_main() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["edge-agent"] == "edge_agent.cli:main"
    tree = ast.parse(MODULES["edge_agent.cli"].read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
