"""The package map holds: layers import downwards only, no import cycles, the trusted evaluator apart.

Imports are read from the source (every ``import`` statement, function-local ones included: an import
placed in a function to cut a cycle is still a cycle).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import rewardgen

PACKAGE = Path(rewardgen.__file__).parent

#: each package (or top-level module) of rewardgen and its layer; a module may import only from its
#: own layer's packages or lower ones (docs/architecture.md draws the same map)
LAYERS: dict[str, int] = {
    "envsteps": 0, "errors": 0, "glbackend": 0, "tables": 0, "interrupt": 0, "mjlog": 0, "safetext": 0, "resources": 0,
    "runfiles": 0, "store": 0, "stats": 0, "loadavg": 0, "software": 0,
    "contract": 1,
    "tasks": 2,
    "sim": 3,
    "evaluate": 4, "proposers": 4,
    "sandbox": 5,
    "procs": 6,
    "trainers": 7,
    "inspect": 8,
    "run": 9,
    "api": 10, "bench": 10, "web": 10,
    "cli": 11, "__main__": 12, "": 12,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["rewardgen", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rewardgen":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else _resolve(node.module))
        elif isinstance(node, ast.Import):
            found.update(_resolve(a.name) for a in node.names if a.name.split(".")[0] == "rewardgen")
    return found


GRAPH = {m: {t for t in _imports(p) if t != m and not m.startswith(t + ".")} for m, p in MODULES.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    assert {_package(m) for m in MODULES} <= set(LAYERS), {_package(m) for m in MODULES} - set(LAYERS)


def test_layers_import_downwards_only():
    wrong = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
             if LAYERS[_package(t)] > LAYERS[_package(m)]]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_trusted_evaluator_cannot_reach_candidate_code():
    """``rewardgen.evaluate`` decides selection: it imports nothing that loads or runs a reward, or trains."""
    forbidden = ("rewardgen.sandbox", "rewardgen.trainers", "rewardgen.proposers", "rewardgen.contract.reward")
    reach: dict[str, set[str]] = defaultdict(set)
    for m in (m for m in MODULES if _package(m) == "evaluate"):
        todo, seen = [m], set()
        while todo:  # everything it imports, transitively
            cur = todo.pop()
            for t in GRAPH[cur]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        reach[m] = {t for t in seen if t.startswith(forbidden)}
    assert not any(reach.values()), dict(reach)


def test_the_graph_is_read_correctly():
    """The checks above can fail: known edges are found."""
    assert "rewardgen.sim.episode" in GRAPH["rewardgen.evaluate.evaluator"]
    assert "rewardgen.sandbox.jail" in GRAPH["rewardgen.trainers.worker"]
    assert LAYERS[_package("rewardgen.trainers.worker")] > LAYERS[_package("rewardgen.sandbox.jail")]


def test_python_source_is_parsed_in_one_place():
    """Trusted code parses sources from executor threads, and CPython 3.11's ``ast.parse`` is not
    thread-safe (a CI run hit "AST constructor recursion depth mismatch" with two candidates validated
    at once): every parse goes through ``rewardgen.contract.syntax.parse``, which holds a lock."""
    import ast

    calls = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "parse"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "ast"):
                calls.append(f"{name}:{node.lineno}")
    assert [c.split(":")[0] for c in calls] == ["rewardgen.contract.syntax"], calls


#: where a process may be started: the one launch (and the zygote it forks from, which starts itself),
#: the jail (forked by its worker), and whole rewardgen commands started by the web UI and benchmarks
PROCESS_STARTERS = {"rewardgen.procs.launch", "rewardgen.procs.zygote", "rewardgen.sandbox.jail",
                    "rewardgen.web.jobs", "rewardgen.bench.evolve", "rewardgen.bench.train"}


def test_processes_are_started_in_one_place():
    """A worker, the evaluator, the renderer, the window and the jail host are all started by
    ``rewardgen.procs.launch.launch`` (one confinement record, zygote or fresh): no other module
    forks or spawns."""
    starts = {("subprocess", n) for n in ("Popen", "run", "call", "check_call", "check_output")}
    starts |= {("os", n) for n in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve")}
    found = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in starts):
                found.add(name)
    assert found == PROCESS_STARTERS, found ^ PROCESS_STARTERS


def test_the_untrusted_boundary_holds_no_process_machinery():
    """``rewardgen.sandbox`` is the jail and what checks candidate code; the processes around it (the
    zygote, launching, frames, the trusted children, the reaper) are ``rewardgen.procs``, above it."""
    sandbox = {m for m in MODULES if _package(m) == "sandbox"}
    assert not {t for m in sandbox for t in GRAPH[m] if _package(t) == "procs"}
    assert {m.rsplit(".", 1)[-1] for m in sandbox} >= {"jail", "seccomp", "guard", "validate", "allowed"}
    assert not {m.rsplit(".", 1)[-1] for m in sandbox} & {"zygote", "process", "frames", "ipc", "trusted", "reaper"}
    assert LAYERS["procs"] > LAYERS["sandbox"]
