"""The reward jail and the trusted side's defences (issue 16), layer by layer.

The hostile corpus (tests/test_sandbox.py, tests/hostile/jail_*.py) attacks through reward code;
these tests check what the corpus cannot see from inside: the layers as observed from outside the
jail, that the jail dies with its trainer, that a forged result changes nothing the orchestrator
believes, that a lying worker fails its candidate without crashing the run or poisoning resume,
and that the evaluator reads a policy file without inflating it first.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardgen.contract.policy import PolicyExport, PolicyFormatError
from rewardgen.contract.reward import load_reward
from rewardgen.contract.state import StateBuffers
from rewardgen.procs import WorkerLimits, run_worker
from rewardgen.procs.frames import SchemaError, TrainResult, parse_frame
from rewardgen.proposers.base import Proposal
from rewardgen.run.config import EvolveConfig
from rewardgen.run.evolve import Evolution, resume, start_run
from rewardgen.run.executors import LocalExecutor
from rewardgen.sandbox import Jail, JailOptions
from rewardgen.tasks.spec import get_task

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile"
TASK_ID = "inverted-pendulum-balance"

GOOD = '''
import math
import torch

def compute_reward(s):
    up = torch.cos(s.qpos[:, 1])
    still = -0.01 * (s.qvel ** 2).sum(dim=-1) + 0.1 * s.body_linvel["pole"][:, 0]
    return up + still, {"up": up, "still": still}
'''
ZERO = '''
def compute_reward(s):
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
'''


@pytest.fixture(scope="module")
def task():
    return get_task(TASK_ID)


def _random_state(task, n: int, seed: int = 0):
    buffers = StateBuffers(task.schema, task.model, n)
    rng = np.random.default_rng(seed)
    for value in vars(buffers).values():
        if isinstance(value, np.ndarray) and value.dtype == np.float32:
            value[:] = rng.normal(size=value.shape)
    return buffers.to_state()


def test_layers_are_observed_from_outside(task):
    with Jail(GOOD, task.schema, 8) as jail:
        assert jail.load_error is None
        expected = {"seccomp", "no-new-privs", "no-capabilities", "userns", "pidns", "ipcns", "mntns", "netns",
                    "empty-root", "rlimits", "audit-hook", "restricted-builtins"}
        assert expected <= set(jail.layers), (jail.layers, jail.warnings)
        status = Path(f"/proc/{jail._jail_pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        assert fields["Seccomp"].strip() == "2" and fields["NoNewPrivs"].strip() == "1"
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
        if os.geteuid() == 0:  # the jail's root is nobody outside its user namespace
            assert fields["Uid"].split()[:2] == ["65534", "65534"]
        # it holds no descriptor but stdout/stderr and its two channel ends: not the worker's result pipe
        assert set(os.listdir(f"/proc/{jail._jail_pid}/fd")) <= {"1", "2", "3", "4"}
        # and it sees no process but itself
        assert Path(f"/proc/{jail._jail_pid}/status").read_text().count("NSpid") == 1
        assert fields["NSpid"].split()[-1] == "1"


def test_jail_answers_like_the_reward_in_process(task):
    state = _random_state(task, 16)
    expected_total, expected = load_reward(GOOD)(state)
    with Jail(GOOD, task.schema, 16) as jail:
        for _ in range(3):
            total, components = jail(state)
            assert torch.equal(total, expected_total)
            assert list(components) == ["up", "still"]
            assert all(torch.equal(components[k], expected[k]) for k in expected)
        small = _random_state(task, 5, seed=1)
        total, _ = jail(small)
        assert torch.equal(total, load_reward(GOOD)(small)[0])
        jail.verify()


def test_jail_degrades_and_says_so(task):
    with Jail(GOOD, task.schema, 4, JailOptions(namespaces=False)) as jail:
        assert "pidns" not in jail.layers and "seccomp" in jail.layers
        assert any("namespaces disabled" in w for w in jail.warnings), jail.warnings
        assert jail(_random_state(task, 4))[0].shape == (4,)
    with Jail(GOOD, task.schema, 4, JailOptions(seccomp=False, audit=False)) as jail:
        assert "seccomp" not in jail.layers and "pidns" in jail.layers
        assert any("seccomp" in w for w in jail.warnings) and any("audit" in w for w in jail.warnings)


@pytest.mark.slow
def test_jail_dies_with_its_trainer(tmp_path):
    """kill -9 of the trusted process takes the jail with it (parent-death signals; the jail cannot
    clear its own: prctl is not in its seccomp allowlist)."""
    script = (f"import sys, time\nsys.path.insert(0, {str(ROOT)!r})\n"
              "from rewardgen.sandbox import Jail\nfrom rewardgen.tasks.spec import get_task\n"
              f"j = Jail({ZERO!r}, get_task({TASK_ID!r}).schema, 2)\n"
              "print(j._jail_pid, j._pid, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    jail_pid, middle_pid = map(int, proc.stdout.readline().split())
    assert Path(f"/proc/{jail_pid}").exists()
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (Path(f"/proc/{jail_pid}").exists() or Path(f"/proc/{middle_pid}").exists()):
        time.sleep(0.05)
    assert not Path(f"/proc/{jail_pid}").exists() and not Path(f"/proc/{middle_pid}").exists()


def test_forged_result_changes_nothing(task):
    """A reward that pays zero and writes a forged result (a smuggled policy, 10^9 env-steps) onto the
    worker's result pipe trains exactly as the honest zero reward does: same env-steps, same weights."""
    forger = (HOSTILE / "jail_forge_result.py").read_text()
    limits = WorkerLimits(wall_seconds=120, memory_bytes=4 * 1024**3)
    results = []
    for source, extra in ((forger, {"validate": False, "audit": False}), (ZERO, {})):
        job = {"mode": "train", "task": task.to_dict(), "source": source, "steps": 2048, "seed": 5,
               "trainer": "ppo", "num_envs": 16, **extra}
        results.append(run_worker(job, limits))
    forged, honest = results
    assert forged.ok and honest.ok, (forged.error, honest.error)
    assert forged.result["env_steps"] == honest.result["env_steps"] < 10**6
    assert forged.result["trainer"] == "ppo"
    assert forged.payload == honest.payload and b"forged" not in forged.payload


EVIL_SOURCES = {mode: ZERO + f"# EVIL: {mode}\n" for mode in ("bad-env-steps", "bytes-flood", "forged-stage", "garbage",
                                                                "extra-field", "nan-seconds")}


@pytest.mark.parametrize("mode", list(EVIL_SOURCES))
def test_lying_worker_is_a_protocol_failure(task, mode):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    job = {"mode": "train", "task": task.to_dict(), "source": EVIL_SOURCES[mode], "steps": 64, "seed": 0}
    res = run_worker(job, WorkerLimits(wall_seconds=60), module="tests.evil_worker")
    assert res.stage == "protocol" and "malformed" in res.error, (res.stage, res.error)
    assert res.result is None and res.payload is None
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 64 * 1024  # KiB: no pile-up


def test_lying_worker_fails_its_candidate_not_the_run(tmp_path):
    config = EvolveConfig(task=TASK_ID, samples=3, generations=1, steps=1024, workers=2, eval_episodes=1,
                          schedule="full", video=False)
    store = start_run(config, tmp_path / "runs")
    evo = Evolution(store)
    evo._executor = LocalExecutor(2, module="tests.evil_worker")
    proposals = [Proposal(GOOD, origin="honest"), Proposal(EVIL_SOURCES["bad-env-steps"], origin="evil"),
                 Proposal(EVIL_SOURCES["bytes-flood"], origin="evil")]
    evo.write_generation(0, proposals, "test")
    summary = evo.run()
    assert summary["status"] == "finished"
    cands = summary["generations"][0]["candidates"]
    assert cands[0]["status"] == "ok" and cands[0]["fitness"] is not None
    assert cands[1]["status"] == "protocol" and "env_steps" in cands[1]["error"]
    # (once, in a CI run on 2026-12-05, before commit 1e80b11, this candidate ended "runtime" instead: the
    # message says why next time)
    assert cands[2]["status"] == "protocol" and "bytes frame" in cands[2]["error"], cands[2]
    assert summary["best"]["candidate"] == 0
    again = resume(store.path)  # the malformed results poisoned nothing
    assert again["best"] == summary["best"] and again["status"] == "finished"


def test_frame_schema_refuses_what_no_worker_sends():
    ok = parse_frame({"type": "result", "env_steps": 5, "seconds": 1.0, "stats": {"components": {"a": []}}})
    assert isinstance(ok, TrainResult) and ok.env_steps == 5 and list(ok.stats["components"]) == ["a"]
    bad = [
        {"type": "result", "env_steps": "5"},
        {"type": "result", "env_steps": 5.5},
        {"type": "result", "env_steps": True},
        {"type": "result", "env_steps": -1},
        {"type": "result", "env_steps": 5, "stats": {"components": {"x" * 500: []}}},
        {"type": "result", "env_steps": 5, "stats": {"components": {"\udce9": []}}},
        {"type": "result", "env_steps": 5, "stats": {"components": {f"c{i}": [] for i in range(100)}}},
        {"type": "result", "env_steps": 5, "stats": {"episodes": [{"fitness": "high"}]}},
        {"type": "result", "env_steps": 5, "extra": {"slice_env_steps": "all"}},
        {"type": "error", "stage": "ok", "error": "fine"},
        {"type": "progress", "steps": None, "total": 1},
        {"type": "checkpoint", "step": 1},
        ["not", "an", "object"],
    ]
    for frame in bad:
        with pytest.raises(SchemaError):
            parse_frame(frame)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()  # (the magic string, then the header)


def _bomb(declared: tuple[int, ...], inflated_bytes: int) -> bytes:
    """An npz whose member w0 declares ``declared`` but inflates to ``inflated_bytes`` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in (("obs_mean", np.zeros(4, np.float32)), ("obs_var", np.ones(4, np.float32)),
                          ("b0", np.zeros(1, np.float32))):
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(f"{name}.npy", buf.getvalue())
        with zf.open("w0.npy", "w", force_zip64=True) as member:
            member.write(_npy_header(declared))
            chunk = b"\0" * (16 * 1024 * 1024)
            for _ in range(inflated_bytes // len(chunk)):
                member.write(chunk)
    return out.getvalue()


@pytest.mark.parametrize("declared", [(1, 4), (2_000_000_000, 4)], ids=["lies-small", "declares-huge"])
@pytest.mark.slow
def test_zip_bombed_policy_is_refused_before_inflating(tmp_path, declared):
    raw = _bomb(declared, 1024 * 1024 * 1024)
    assert len(raw) < 8 * 1024 * 1024  # a small file...
    path = tmp_path / "policy.npz"
    path.write_bytes(raw)
    code = ("import json, resource, sys\nfrom pathlib import Path\nfrom rewardgen.contract.policy import PolicyExport, "
            "PolicyFormatError\nbase = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"try:\n    PolicyExport.from_bytes(Path({str(path)!r}).read_bytes())\n    print('loaded')\n"
            "except PolicyFormatError as exc:\n    print(json.dumps({'error': str(exc), "
            "'grew_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert "bytes" in answer["error"]
    assert answer["grew_kb"] < 64 * 1024  # ...that never became a gigabyte in memory
    with pytest.raises(PolicyFormatError):
        PolicyExport.from_bytes(raw)


def test_evaluator_has_limits_and_no_secrets(tmp_path, monkeypatch):
    """The trusted evaluator reads worker output: it runs with an address-space limit and without
    the orchestrator's secrets."""
    from rewardgen.procs.trusted import EVALUATOR_MEMORY_BYTES, run_trusted_child

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-secret")
    answer = run_trusted_child("tests.trusted_probe", {"seed": 3}, 60, "probe")
    assert answer["as"] == EVALUATOR_MEMORY_BYTES and answer["core"] == 0
    assert answer["secrets"] == [] and answer["job"] == {"seed": 3}
    assert answer["fds"] == [0, 1, 2, answer["result_fd"]]  # nothing of the orchestrator's came along


def test_killed_jail_is_reported_not_fatal(task):
    """A jail that dies (here: its CPU limit) fails the candidate with the reason; the worker reports it."""
    spin = "def compute_reward(s):\n    while True:\n        pass\n"
    with Jail(spin, task.schema, 2, JailOptions(cpu_seconds=1)) as jail:
        with pytest.raises(Exception) as info:
            jail(_random_state(task, 2))
    assert "SIGXCPU" in str(info.value) and "CPU-time limit" in str(info.value)
    assert signal.SIGXCPU  # (named in the message above)


@pytest.mark.slow
def test_a_machine_without_namespaces_degrades_and_says_so(tmp_path):
    """Where the kernel refuses ``unshare`` (containers, hardened distributions), ``rewardgen check``
    still works: the jail keeps its seccomp filter and rlimits, and the verdict says which layers are
    missing. The refusal is real: a seccomp filter on the whole command answers EPERM to unshare."""
    reward = tmp_path / "reward.py"
    reward.write_text(GOOD)
    wrapper = (
        "import ctypes, ctypes.util, errno, os, sys\n"
        "lib = ctypes.CDLL(ctypes.util.find_library('seccomp'))\n"
        "lib.seccomp_init.restype = ctypes.c_void_p\n"
        "lib.seccomp_init.argtypes = [ctypes.c_uint32]\n"
        "lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]\n"
        "lib.seccomp_load.argtypes = [ctypes.c_void_p]\n"
        "ctx = lib.seccomp_init(0x7FFF0000)\n"
        "nr = lib.seccomp_syscall_resolve_name(b'unshare')\n"
        "assert lib.seccomp_rule_add(ctx, 0x00050000 | errno.EPERM, nr, 0) == 0\n"
        "assert lib.seccomp_load(ctx) == 0\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'rewardgen', 'check', sys.argv[1], '--task', "
        f"{TASK_ID!r}, '--steps', '16', '--json'])\n")
    res = subprocess.run([sys.executable, "-c", wrapper, str(reward)], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["ok"] is True
    text = subprocess.run([sys.executable, "-c", wrapper.replace(", '--json'", ""), str(reward)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300).stdout
    assert text.startswith("accepted")
    assert "no user/PID/IPC/mount/network namespaces" in text and "seccomp and rlimits still apply" in text


# ----- the jail's answers checked for meaning and liveness (issue 31, item 4)
_WALK = '''
def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__
'''


@pytest.mark.parametrize("name", ["__total__", "total", "(total)", "__anything"])
def test_reserved_component_names_are_refused(task, name):
    source = f"def compute_reward(s):\n    z = s.qpos[:, 0] * 0.0\n    return z, {{{name!r}: z + 500.0}}\n"
    with Jail(source, task.schema, 2) as jail:
        with pytest.raises(Exception) as info:
            jail(_random_state(task, 2))
    assert getattr(info.value, "stage", None) == "contract" and "reserved" in str(info.value), info.value


def test_refused_system_calls_are_counted_outside_the_jail(task):
    """With the audit hook off, the reward's open/socket/kill reach the kernel and are refused; the
    supervisor (outside the jail) counts each. An honest reward is refused nothing."""
    hostile = _WALK + '''
def compute_reward(s):
    os = _os()
    for attempt in (lambda: os["open"]("/etc/passwd", 0), lambda: os["listdir"]("/"),
                    lambda: os["kill"](1, 0), lambda: os["getcwd"]()):
        try:
            attempt()
        except OSError:
            pass
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
'''
    with Jail(hostile, task.schema, 2, JailOptions(audit=False)) as jail:
        for _ in range(3):
            jail(_random_state(task, 2))
        total, names = jail.refused()
    assert total >= 12 and {"openat", "kill"} <= set(names), (total, names)
    with Jail(GOOD, task.schema, 2) as jail:
        for _ in range(3):
            jail(_random_state(task, 2))
        jail.verify()
        assert jail.refused() == (0, {}) and not jail.guard_off


def test_a_guard_switched_off_is_flagged(task):
    off = '''
def compute_reward(s):
    for cell in __builtins__["__import__"].__closure__:
        if hasattr(cell.cell_contents, "armed"):
            cell.cell_contents.armed = False
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
'''
    with Jail(off, task.schema, 2) as jail:
        jail(_random_state(task, 2))
        jail.verify()
        assert jail.guard_off


@pytest.mark.slow
def test_a_reward_that_blocks_after_the_smoke_check_is_caught_within_its_deadline(task):
    """It passes the smoke check, then blocks reading its own channel (no CPU used, so the CPU limit
    never fires): the worker stops it within seconds of its per-call deadline, not at the wall-clock
    limit, and says why."""
    blocking = _WALK + '''
_calls = [0]


def compute_reward(s):
    _calls[0] += 1
    if _calls[0] > 120:
        _os()["read"](3, 1)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
'''
    seen: list[float] = []
    job = {"mode": "train", "task": task.to_dict(), "source": blocking, "steps": 20_000, "seed": 0,
           "trainer": "ppo", "num_envs": 8, "validate": False,
           "check": {"steps": 256, "seed": 0, "num_envs": 4, "seconds": 120.0}}
    res = run_worker(job, WorkerLimits(wall_seconds=300), on_event=lambda ev: seen.append(time.monotonic()))
    end = time.monotonic()
    assert res.check is not None, res.error  # the smoke check passed
    assert res.stage == "runtime" and "did not answer within" in res.error and "blocked" in res.error, res.error
    import re

    deadline = float(re.search(r"within ([0-9.]+) s", res.error).group(1))
    assert seen and end - seen[-1] <= deadline + 10, (end - seen[-1], deadline)
    assert res.seconds < 120


def test_flags_reach_the_report_and_the_web_page(tmp_path):
    """A candidate whose reward was flagged says so on its card, in the report and the web UI alike."""
    from fastapi.testclient import TestClient
    from test_feedback import fake_run

    from rewardgen.inspect.report import write_report
    from rewardgen.store import RunStore
    from rewardgen.web import create_app

    run = fake_run(tmp_path / "runs", samples=1)
    store = RunStore(run)
    m = store.read_metrics(0, 0)
    flag = "was refused 3 system call(s) in its jail (openat x3): it tried what a reward has no business doing"
    store.write_json(store.cand_dir(0, 0) / "metrics.json", m | {"flags": [flag]})
    assert f"the reward {flag}" in write_report(run).read_text()
    page = TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1").get(f"/runs/{run.name}/gen/0")
    assert f"the reward {flag}" in page.text
