"""Packaging: every package is in the wheel, and the built wheel works on its own.

The slow test builds the wheel from a copy of the source (so the checkout gets no ``build/`` or
``*.egg-info``), installs it into a fresh virtual environment outside the source tree (with the
system's site-packages for torch, MuJoCo and the rest; ``--no-deps``), and runs the installed
``rewardgen`` from a folder outside the source tree with ``PYTHONPATH`` unset: the package, the task
specs and the prompt templates must all come from inside the venv, and the sandboxed ``check`` must
accept a reward there (its audit guard allows reads under the installed package).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import GOOD_PENDULUM_REWARD, ROOT, last_json

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
#: the design card's data folders and the package each ships as (pyproject's package-dir)
DATA_FOLDERS = {"environments": "rewardgen._environments", "prompts": "rewardgen._prompts"}


def _source_packages() -> set[str]:
    return {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "rewardgen").rglob("__init__.py")
            if "__pycache__" not in init.parts}


def test_every_package_is_listed_in_pyproject():
    listed = set(SETUPTOOLS["packages"])
    missing = _source_packages() - listed
    assert not missing, f"packages with an __init__.py that the wheel would leave out: {sorted(missing)}"
    # and nothing listed that does not exist: a source package, or a data folder mapped by package-dir
    assert SETUPTOOLS["package-dir"] == {pkg: folder for folder, pkg in DATA_FOLDERS.items()}
    for folder in DATA_FOLDERS:
        assert (ROOT / folder).is_dir(), folder
    assert listed - _source_packages() == set(DATA_FOLDERS.values())
    # package data: each pattern matches a file (a stale pattern such as a missing static/* is a bug)
    for pkg, patterns in SETUPTOOLS["package-data"].items():
        where = ROOT / SETUPTOOLS["package-dir"].get(pkg, pkg.replace(".", "/"))
        for pattern in patterns:
            assert list(where.glob(pattern)), f"{pkg}: {pattern!r} matches nothing in {where}"


def _shipped_sources() -> set[str]:
    """The files the wheel must hold, as paths inside it: the tracked files of the package and of the
    data folders (mapped to their package's folder)."""
    roots = ["rewardgen", *DATA_FOLDERS]
    try:
        out = subprocess.run(["git", "ls-files", "-z", *roots], cwd=ROOT, capture_output=True, check=True)
        files = [f for f in out.stdout.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but caches
        files = [str(p.relative_to(ROOT)) for r in roots for p in (ROOT / r).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts]
    shipped = set()
    for f in files:
        top, _, rest = f.partition("/")
        shipped.add(DATA_FOLDERS[top].replace(".", "/") + "/" + rest if top in DATA_FOLDERS else f)
    return shipped


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("rewardgen", *DATA_FOLDERS):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "--disable-pip-version-check",
                          "-w", str(tmp / "dist"), str(src)], cwd=tmp, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheels = list((tmp / "dist").glob("rewardgen-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv outside the source tree with the wheel installed (the system's packages visible)."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    assert not where.resolve().is_relative_to(ROOT)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(where)], check=True, timeout=300)
    if sys.prefix != sys.base_prefix:  # the tests run in a venv: its packages, not the base Python's, are "the system"
        site = next((where / "lib").glob("python*/site-packages"))
        parent = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
        (site / "_parent_env.pth").write_text("\n".join(parent) + "\n")
    res = subprocess.run([str(where / "bin" / "pip"), "install", "--no-deps", "--disable-pip-version-check", "-q",
                          str(wheel)],
                         capture_output=True, text=True, timeout=300, env=_outside_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return where


def _outside_env() -> dict[str, str]:
    """This process's environment without anything that points Python at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(venv: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=_outside_env())


@pytest.mark.slow
def test_the_wheel_holds_every_source_file(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        inside = {n for n in z.namelist() if ".dist-info/" not in n}
        entry_points = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
    missing = _shipped_sources() - inside
    assert not missing, f"files the wheel leaves out: {sorted(missing)}"
    assert "rewardgen/_environments/halfcheetah-run.yaml" in inside and "rewardgen/_prompts/system.j2" in inside
    assert "rewardgen = rewardgen.cli:main" in entry_points


@pytest.mark.slow
def test_the_installed_wheel_runs_outside_the_source_tree(venv: Path, tmp_path: Path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    assert not cwd.resolve().is_relative_to(ROOT)
    site = venv.resolve()

    # the package and its data come from the venv, not from the checkout
    probe = _run(venv, cwd, "python", "-c",
                 "import json, rewardgen, rewardgen.resources as r\n"
                 "print(json.dumps({'file': rewardgen.__file__, 'env': str(r.ENVIRONMENTS_DIR),"
                 " 'prompts': str(r.PROMPTS_DIR)}))")
    assert probe.returncode == 0, probe.stderr[-3000:]
    where = last_json(probe.stdout)
    for key in ("file", "env", "prompts"):
        path = Path(where[key]).resolve()
        assert path.is_relative_to(site) and not path.is_relative_to(ROOT), (key, path)
    assert Path(where["env"]).name == "_environments" and Path(where["prompts"]).name == "_prompts"
    assert (Path(where["env"]) / "halfcheetah-run.yaml").is_file()
    assert (Path(where["prompts"]) / "system.j2").is_file()

    tasks = _run(venv, cwd, "rewardgen", "tasks", "--json")
    assert tasks.returncode == 0, tasks.stderr[-3000:]
    ids = {t["id"] for t in last_json(tasks.stdout)}
    shipped = {p.stem for p in (ROOT / "environments").glob("*.yaml")}
    assert ids == shipped and "halfcheetah-run" in ids
    human = _run(venv, cwd, "rewardgen", "tasks")
    assert human.returncode == 0 and "halfcheetah-run" in human.stdout, human.stderr[-3000:]

    describe = _run(venv, cwd, "rewardgen", "describe", "halfcheetah-run")
    assert describe.returncode == 0, describe.stderr[-3000:]
    for text in ("=== system prompt ===", "compute_reward(s)", "bthigh", "HalfCheetah-v5"):
        assert text in describe.stdout, text

    reward = cwd / "reward.py"
    reward.write_text(GOOD_PENDULUM_REWARD)
    check = _run(venv, cwd, "rewardgen", "check", str(reward), "--task", "inverted-pendulum-balance",
                 "--steps", "16", "--json")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert last_json(check.stdout) == {"ok": True, "stage": "ok", "error": None, "components": ["alive", "upright"]}
    assert "Traceback" not in check.stderr
