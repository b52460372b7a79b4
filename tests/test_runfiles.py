"""A run directory is untrusted input (issue 31, item 1): ``rewardgen.runfiles`` opens its files.

- the walk: every place in the package that opens, lists, stats, writes or removes a file by path is
  ``rewardgen/runfiles.py`` or one of the sites listed below with the reason it is not a run's file;
- ``RunFiles`` itself: symlinked files and folders refused for reads and writes, paths outside the
  run refused, FIFOs and devices refused, oversized reads refused, writes atomic and never through a
  link planted at the target, lock and append files of one name only.

The attacks on real run directories (report, serve, resume, export) are in ``tests/test_trust.py``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import rewardgen
from rewardgen.runfiles import CorruptFileError, RefusedFileError, RunFiles

PACKAGE = Path(rewardgen.__file__).parent

#: calls of a plain name that open or write a file by path
NAME_CALLS = {"open", "read_json", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "publish",
              "FileResponse", "mkstemp", "NamedTemporaryFile", "copytree", "rmtree"}
#: ``module.function`` calls that do
MODULE_CALLS = {"os": {"open", "replace", "rename", "unlink", "remove", "mkdir", "makedirs", "listdir", "scandir",
                       "rmdir", "symlink", "link", "truncate", "chmod"},
                "shutil": {"copy", "copy2", "copyfile", "copytree", "move", "rmtree"},
                "tempfile": {"mkstemp", "NamedTemporaryFile", "mkdtemp"},
                "np": {"load", "fromfile"}, "numpy": {"load", "fromfile"}}
#: ``pathlib.Path`` methods (told from ``RunFiles``' methods of the same name by their arguments: a
#: Path method takes no path, RunFiles' take one first) -> most positional arguments of the Path form
PATH_METHODS = {"read_text": 0, "read_bytes": 0, "write_text": 1, "write_bytes": 1, "open": 1, "unlink": 0,
                "mkdir": 0, "glob": 1, "rglob": 1, "iterdir": 0, "is_file": 0, "is_dir": 0, "exists": 0,
                "touch": 0, "symlink_to": 1, "rmdir": 0}

#: the places that open files by path and why none of them is a run's file: (module, function) -> reason
NOT_RUN_FILES = {
    ("rewardgen.runfiles", "*"): "the one module that opens a run's files",
    ("rewardgen.store", "_umask"): "/proc/self/status",
    ("rewardgen.store", "atomic_write_bytes"): "the plain-path writer, for files that are not a run's",
    ("rewardgen.store", "publish"): "the plain-path writer, for files that are not a run's",
    ("rewardgen.store", "read_json"): "the plain-path reader, for files that are not a run's",
    ("rewardgen.store", "atomic_write_text"): "the plain-path writer, for files that are not a run's",
    ("rewardgen.store", "atomic_write_json"): "the plain-path writer, for files that are not a run's",
    ("rewardgen.store", "_remove"): "the plain-path writer's temp file",
    ("rewardgen.store", "check_runs_dir"): "the runs folder the user names (creates it)",
    ("rewardgen.store", "RunStore.create"): "a new run folder in the runs folder the user names",
    ("rewardgen.store", "RunStore.open"): "is the run folder the user named a folder",
    ("rewardgen.resources", "*"): "rewardgen's own environments/ and prompts/",
    ("rewardgen.tasks.spec", "*"): "task YAML files the user names or rewardgen ships",
    ("rewardgen.run.config", "EvolveConfig.validate"): "--prompts DIR the user names",
    ("rewardgen.cli.common", "read_reward"): "the reward file the user names",
    ("rewardgen.cli.common", "writable_output"): "the -o path the user names",
    ("rewardgen.cli.commands", "cmd_debug"): "the --policy file the user names",
    ("rewardgen.cli.commands", "cmd_export"): "the -o path the user names",
    ("rewardgen.cli.commands", "cmd_serve"): "the runs folder the user names",
    ("rewardgen.loadavg", "runnable_now"): "/proc/loadavg",
    ("rewardgen.run.forecast", "calibrate"): "the calibration's own temporary folder",
    ("rewardgen.run.forecast", "RateBook"): "the user's own cache of measured rates ($XDG_CACHE_HOME/rewardgen)",
    ("rewardgen.inspect.debug", "main"): "the debug worker's own job files (scratch)",
    ("rewardgen.inspect.export", "export_reward"): "the -o path the user names",
    ("rewardgen.inspect.policy_export", "export_policy"): "the -o folder the user names, and the loader the "
                                                          "package ships (the policy is read through RunFiles)",
    ("rewardgen.cli.commands", "cmd_play"): "the -o video path the user names",
    ("rewardgen.inspect.report", "write_report"): "the -o path the user names (a run's own report.html goes "
                                                  "through RunFiles)",
    ("rewardgen.inspect.tensorboard", "write_scalars"): "a folder RunFiles opened (/proc/self/fd/N)",
    ("rewardgen.web.app", "DescriptorResponse.__init__"): "reopens a descriptor RunFiles opened (/proc/self/fd/N)",
    ("rewardgen.web.app", "Runs.list"): "the runs folder the server was started on (each run is read through "
                                        "RunFiles; links are skipped)",
    ("rewardgen.web.app", "Runs.store"): "the runs folder the server was started on",
    ("rewardgen.contract.policy", "load_npz"): "members of an in-memory zip archive",
    ("rewardgen.evaluate.video", "_render_here"): "the scratch path the caller gives (evolve stores the video "
                                                  "through RunFiles)",
    ("rewardgen.sandbox.jail", "*"): "/proc of the jail it made, and the jail's own empty root",
    ("rewardgen.sandbox.oslevel", "*"): "/proc/self files, and the scheduling group of a jail the worker started",
    ("rewardgen.procs.zygote", "*"): "descriptors and its own scratch folder",
    ("rewardgen.procs.process", "*"): "descriptors and the worker's scratch folder",
    ("rewardgen.procs.trusted", "*"): "descriptors of its children, and each child's own scratch folder",
    ("rewardgen.sim.warp", "*"): "Warp's kernel cache folder",
    ("rewardgen.run.executors", "*"): "the Ray executor's pid files in its own scratch folder",
    ("rewardgen.bench.evolve", "*"): "the benchmark's own temporary folder",
    ("rewardgen.bench.suite", "*"): "the suite's own state and table in the --out folder (its runs are read "
                                    "through RunFiles)",
    ("rewardgen.bench.schedule", "earlier_run"): "lists the benchmark's runs folder (each run read through "
                                                 "RunFiles)",
    ("rewardgen.bench.schedule", "compare_schedules"): "the benchmark's own temporary runs folder",
    ("rewardgen.run.videos", "VideoQueue._video"): "the video rendered into a scratch folder of its own (stored in "
                                                   "the run through RunFiles)",
    ("rewardgen.bench.train", "*"): "the benchmark's own temporary folder",
    ("rewardgen.bench.sandbox", "*"): "the benchmark's own temporary folder",
    ("rewardgen.bench.export", "*"): "the benchmark's own temporary folder",
    ("rewardgen.procs.reaper", "*"): "/proc of this process's children",
}


def _module_name(path: Path) -> str:
    parts = ["rewardgen", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Sites(ast.NodeVisitor):
    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[str, int, str]] = []

    def _visit_scope(self, node) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_scope

    def visit_Call(self, node: ast.Call) -> None:
        func, what = node.func, None
        positional = len(node.args)
        if isinstance(func, ast.Name) and func.id in NAME_CALLS:
            what = func.id
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if owner in MODULE_CALLS and func.attr in MODULE_CALLS[owner]:
                what = f"{owner}.{func.attr}"
            elif owner == "tempfile" and func.attr in NAME_CALLS:
                what = f"{owner}.{func.attr}"
            elif func.attr in PATH_METHODS and positional <= PATH_METHODS[func.attr] and owner not in MODULE_CALLS \
                    and owner != "RunStore":  # RunStore.open(path): opens a run through RunFiles
                what = f".{func.attr}()"
        if what:
            self.found.append((".".join(self.scope), node.lineno, what))
        self.generic_visit(node)


def _sites() -> list[tuple[str, str, int, str]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        visitor = _Sites()
        visitor.visit(ast.parse(path.read_text()))
        module = _module_name(path)
        out += [(module, scope, line, what) for scope, line, what in visitor.found]
    return out


def _allowed(module: str, scope: str) -> bool:
    if (module, "*") in NOT_RUN_FILES:
        return True
    parts = scope.split(".")
    return any((module, ".".join(parts[:i])) in NOT_RUN_FILES for i in range(1, len(parts) + 1))


def test_only_runfiles_opens_a_runs_files():
    """Every file operation by path outside ``rewardgen.runfiles`` is a listed site that is not a run's file."""
    stray = [f"{module}:{line} in {scope or '<module>'}: {what}" for module, scope, line, what in _sites()
             if not _allowed(module, scope)]
    assert not stray, "file operations outside rewardgen.runfiles (route them through RunFiles, or list why " \
                      "they are not a run's files):\n" + "\n".join(stray)


def test_the_walk_sees_what_it_must():
    """The walk finds each kind of call it is meant to (a walk that sees nothing proves nothing)."""
    source = ("import os, shutil, numpy as np\nfrom pathlib import Path\n"
              "def f(p, store):\n    open(p)\n    Path(p).read_text()\n    p.write_bytes(b'')\n    os.open(p, 0)\n"
              "    shutil.copytree(p, p)\n    np.load(p)\n    (p / 'x').is_file()\n    read_json(p)\n"
              "    store.read_text(p)\n    store.is_file(p)\n    'a'.replace('a', 'b')\n")
    visitor = _Sites()
    visitor.visit(ast.parse(source))
    found = [what for _, _, what in visitor.found]
    assert found == ["open", ".read_text()", ".write_bytes()", "os.open", "shutil.copytree", "np.load",
                     ".is_file()", "read_json"]


# ----- RunFiles itself
@pytest.fixture()
def run(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    (root / "gen-000" / "cand-00").mkdir(parents=True)
    (root / "gen-000" / "cand-00" / "reward.py").write_text("ok")
    (tmp_path / "secret.txt").write_text("SECRET")
    return root


def test_symlinked_files_and_folders_are_refused(run: Path, tmp_path: Path):
    files = RunFiles(run)
    (run / "link.txt").symlink_to(tmp_path / "secret.txt")
    (run / "gen-001").symlink_to(tmp_path)
    (run / "inner").symlink_to(run / "gen-000")  # a link inside the run is refused as well
    for path in ("link.txt", "gen-001/secret.txt", "inner/cand-00/reward.py"):
        with pytest.raises(RefusedFileError, match="symbolic link"):
            files.read_bytes(path)
        assert not files.is_file(path)
    assert files.kind("link.txt") == "link"
    with pytest.raises(RefusedFileError, match="symbolic link"):
        files.write_text("gen-001/new.txt", "x")
    assert not (tmp_path / "new.txt").exists()
    with pytest.raises(CorruptFileError):  # report and web catch this class
        files.read_json("link.txt")
    assert files.read_text("gen-000/cand-00/reward.py") == "ok"


def test_paths_outside_the_run_are_refused(run: Path, tmp_path: Path):
    files = RunFiles(run)
    for path in (tmp_path / "secret.txt", run / ".." / "secret.txt", "../secret.txt", "/etc/passwd"):
        with pytest.raises(RefusedFileError, match="not inside the run"):
            files.read_bytes(path)
    with pytest.raises(RefusedFileError, match="not inside the run"):
        files.write_text(run / ".." / "x.txt", "x")
    assert not (tmp_path / "x.txt").exists()


def test_fifos_devices_and_oversized_files_are_refused(run: Path):
    files = RunFiles(run)
    os.mkfifo(run / "fifo")
    with pytest.raises(RefusedFileError, match="not a regular file"):  # without blocking on the FIFO
        files.read_bytes("fifo")
    (run / "big").write_bytes(b"x" * 1000)
    with pytest.raises(RefusedFileError, match="larger than 100 bytes"):
        files.read_bytes("big", limit=100)
    assert files.read_json("missing.json") is None
    (run / "bad.json").write_text("{")
    with pytest.raises(CorruptFileError):
        files.read_json("bad.json")


def test_writes_replace_a_planted_link_and_never_follow_it(run: Path, tmp_path: Path):
    files = RunFiles(run)
    (run / "metrics.json").symlink_to(tmp_path / "secret.txt")
    files.write_json("metrics.json", {"a": 1})  # a rename replaces the link itself
    assert (tmp_path / "secret.txt").read_text() == "SECRET"
    assert not (run / "metrics.json").is_symlink() and files.read_json("metrics.json") == {"a": 1}
    files.write_text("gen-002/cand-00/reward.py", "new")  # folders made inside the run
    assert (run / "gen-002" / "cand-00" / "reward.py").read_text() == "new"
    assert [p.name for p in run.rglob(".*.tmp")] == []


def test_lock_and_append_files_must_be_the_runs_own(run: Path, tmp_path: Path):
    files = RunFiles(run)
    (run / "run.lock").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(RefusedFileError, match="symbolic link"):
        files.open_lock("run.lock")
    os.link(tmp_path / "secret.txt", run / "web-job.log")
    with pytest.raises(RefusedFileError, match="hard link"):
        files.open_append("web-job.log")
    assert (tmp_path / "secret.txt").read_text() == "SECRET"
    with files.open_append("other.log") as f:
        f.write(b"line\n")
    assert files.read_text("other.log") == "line\n"
