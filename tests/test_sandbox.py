"""The sandbox for untrusted reward code (issue 3): static validation, runtime layers, check_reward.

The hostile corpus in tests/hostile/ has one attack per file; its header says what it tries and
the expected verdict (``# expect:`` stage, ``# cause:`` a substring of the error). ``# flags:
bypass`` skips the static check so the runtime layers are exercised; ``noaudit`` also switches off
the audit hook so the seccomp filter alone must stop it. All files run once, two at a time, in a
module fixture; the per-file tests then assert the verdict and that the attack had no effect.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from rewardgen.procs import WorkerLimits, run_worker
from rewardgen.procs.check import CheckVerdict, check_reward
from rewardgen.sandbox.guard import reward_torch
from rewardgen.sandbox.seccomp import ALLOWED as SECCOMP_ALLOWED
from rewardgen.sandbox.validate import ValidationError, ensure_valid, validate_source
from rewardgen.tasks.spec import get_task

HOSTILE = Path(__file__).parent / "hostile"
SECRET = "sk-test-secret"
TASK_ID = "inverted-pendulum-balance"

GOOD = '''
import math
import torch

def compute_reward(s):
    up = torch.cos(s.qpos[:, 1])
    still = -0.01 * (s.qvel ** 2).sum(dim=-1)
    return up + still, {"up": up, "still": still}
'''


@pytest.fixture(scope="module")
def task():
    return get_task(TASK_ID)


# --------------------------------------------------------------------------------------------
# static validation
# --------------------------------------------------------------------------------------------

def test_validator_accepts_good_reward():
    assert validate_source(GOOD) == []
    ensure_valid(GOOD)


@pytest.mark.parametrize("snippet, expected", [
    ("import os", "import of 'os'"),
    ("from torch import save", "torch.save"),
    ("import torch.utils.cpp_extension", "torch.utils"),
    ("from torch import hub as h", "torch.hub"),
    ("import torch\nx = torch.jit", ".jit"),
    ("import torch\nx = torch.ops.aten", ".ops"),
    ("import torch\nx = torch.classes", ".classes"),
    ("import torch\nx = torch.cuda.memory", ".cuda"),
    ("import torch\nx = torch.multiprocessing", ".multiprocessing"),
    ("import torch\nx = torch.distributed", ".distributed"),
    ("import torch\nx = torch.library", ".library"),
    ("import torch\nx = torch.from_file", ".from_file"),
    ("import torch as T\nt = T\nt.save(1, 'x')", ".save"),
    ("import torch\ntorch.Tensor.mean = None", "monkeypatching"),
    ("import math\nmath.pi = 3", "monkeypatching"),
    ("x = ().__class__", "dunder"),
    ("x = __builtins__", "__builtins__"),
    ("x = eval('1')", "'eval'"),
    ("x = compile('1', 'a', 'eval')", "'compile'"),
    ("x = globals()", "'globals'"),
    ("x = vars()", "'vars'"),
    ("x = getattr(1, 'real')", "'getattr'"),
    ("setattr(1, 'a', 2)", "'setattr'"),
    ("breakpoint()", "'breakpoint'"),
    ("input()", "'input'"),
    ("x = 'a__b'", "'__'"),
    ("x = '{0.real}'.format(1)", "format fields"),
    ("g = (i for i in [])\nf = g.gi_frame", "gi_frame"),
    ("import torch\nx = torch._C", "private"),
    ("from . import x", "relative"),
    ("import torch\ntorch.set_num_threads(4)", "torch.set_num_threads"),
])
def test_validator_refuses(snippet, expected):
    source = snippet + "\n\ndef compute_reward(s):\n    return s.qpos[:, 0], {}\n"
    issues = validate_source(source)
    assert issues, snippet
    text = " | ".join(str(i) for i in issues)
    assert expected.lower() in text.lower(), text
    assert issues[0].line >= 1


def test_validator_line_numbers_and_error():
    source = "import torch\n\ndef compute_reward(s):\n    x = 1\n    open('/etc/passwd')\n    return x, {}\n"
    issues = validate_source(source)
    assert [i.line for i in issues] == [5]
    with pytest.raises(ValidationError) as info:
        ensure_valid(source)
    assert info.value.line == 5 and "line 5" in str(info.value)


def test_validator_requires_compute_reward_and_parses():
    assert "compute_reward" in str(validate_source("def f(s):\n    return 1\n")[0])
    issue = validate_source("def compute_reward(s)\n    pass\n")[0]
    assert issue.line == 1 and "SyntaxError" in issue.message
    assert validate_source("x" * 200_000)[0].line == 0


def test_reward_torch_view_lacks_dangerous_api():
    t = reward_torch()
    for name in ("save", "load", "from_file", "ops", "classes", "hub", "jit", "os", "sys", "utils", "cuda",
                 "multiprocessing", "distributed", "library", "set_num_threads", "UntypedStorage"):
        assert not hasattr(t, name), name
    for name in ("einsum", "where", "exp", "linalg", "nn", "Tensor", "zeros_like"):
        assert hasattr(t, name), name
    t.exp = None  # rebinding on the view does not touch the real torch
    assert torch.exp is not None


def test_seccomp_allowlist_holds_nothing_dangerous():
    dangerous = {"open", "openat", "openat2", "creat", "clone", "clone3", "fork", "vfork", "execve", "execveat",
                 "socket", "socketpair", "connect", "kill", "tkill", "tgkill", "rt_sigqueueinfo",
                 "rt_tgsigqueueinfo", "pidfd_send_signal", "ptrace", "prctl", "setpriority", "sched_setaffinity",
                 "sched_setscheduler", "sched_setattr", "shmget", "msgget", "semget", "mount", "unshare", "setns",
                 "setsid", "setpgid", "ioctl", "dup", "dup2", "dup3", "pipe", "pipe2", "process_vm_writev", "bpf",
                 "io_uring_setup", "userfaultfd", "memfd_create", "read", "write", "prlimit64", "setrlimit"}
    assert not dangerous & set(SECCOMP_ALLOWED)


# --------------------------------------------------------------------------------------------
# the hostile corpus
# --------------------------------------------------------------------------------------------

def _header(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# (attack|expect|cause|flags|flagged|wall): ?(.*)$", text, flags=re.M))


CORPUS = sorted(HOSTILE.glob("*.py"))


def _listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    hits: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            hits.append(conn.recv(100) or b"(connected)")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, hits, stop


def _sleepers() -> list[int]:
    """Processes that only a successful process-creation attack would start ("sleep 30")."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == b"sleep\x0030\x00":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _sched_facts(pid: int) -> dict:
    """What a signal or scheduling attack on ``pid`` would change: whether it is stopped (state T or t;
    running R and sleeping S both are normal, the victim is R for a moment after its start), nice value,
    scheduling policy and CPU affinity."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"stopped": fields[0] in ("T", "t"), "nice": int(fields[16]), "policy": int(fields[38]),
            "affinity": sorted(os.sched_getaffinity(pid))}


def _sysv_objects() -> dict[str, list[str]]:
    """SysV shared memory segments, message queues and semaphore sets of this IPC namespace."""
    out = {}
    for kind in ("shm", "msg", "sem"):
        try:
            out[kind] = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            out[kind] = []
    return out


def _workers(scratch: Path) -> list[int]:
    """Worker and jail processes of this corpus: their HOME is a scratch folder under ``scratch`` (a
    jail is a fork of its worker, with the same environment)."""
    found = []
    marker = f"HOME={scratch}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _gone(pids: set[int], seconds: float = 5.0) -> set[int]:
    """``pids`` still alive after up to ``seconds`` (a jail dies a moment after its worker)."""
    deadline = time.monotonic() + seconds
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if Path(f"/proc/{p}").exists()}
        time.sleep(0.05)
    return pids


@pytest.fixture(scope="module")
def corpus(task, tmp_path_factory):
    """Runs every hostile file once (two workers at a time) and records what happened around it."""
    tmp = tmp_path_factory.mktemp("hostile")
    pwned = Path(f"/tmp/rewardgen_pwned_{uuid.uuid4().hex}")
    victim_file = tmp / "victim.txt"
    victim_file.write_text("keep me")
    victim = subprocess.Popen(["sleep", "300"])
    srv, hits, stop = _listener()
    old_key = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = SECRET
    sleepers_before = set(_sleepers())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    victim_before = _sched_facts(victim.pid)
    ipc_before = _sysv_objects()
    scratch = tmp / "scratch"  # every worker's scratch folder (and so its HOME) is made under it
    scratch.mkdir()
    old_tempdir, tempfile.tempdir = tempfile.tempdir, str(scratch)
    subst = {"@PWNED@": str(pwned), "@TMPDIR@": str(tmp / "target"), "@PORT@": str(srv.getsockname()[1]),
             "@VICTIM@": str(victim.pid), "@VICTIMFILE@": str(victim_file), "@ORCH@": str(os.getpid())}

    def run(path: Path) -> tuple[str, CheckVerdict]:
        text = path.read_text()
        for k, v in subst.items():
            text = text.replace(k, v)
        flags = _header(text).get("flags", "").split()
        extra = {}
        if "bypass" in flags:
            extra["validate"] = False
        if "noaudit" in flags:
            extra["audit"] = False
        wall = float(_header(text).get("wall") or 40.0)
        limits = WorkerLimits(wall_seconds=wall, memory_bytes=2 * 1024**3, output_bytes=64 * 1024)
        return path.name, check_reward(text, task, steps=16, limits=limits, job_extra=extra)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            verdicts = dict(pool.map(run, CORPUS))
        victim_alive = victim.poll() is None
        victim_after = _sched_facts(victim.pid)
    finally:
        from rewardgen.procs import zygote

        zygote.reset_shared()  # as at the command's end: the zygote goes too, and is checked with the workers
        tempfile.tempdir = old_tempdir
        stop.set()
        srv.close()
        victim.kill()
        victim.wait()
        if old_key is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = old_key
    yield {
        "verdicts": verdicts, "pwned": pwned, "tmp": tmp, "victim_alive": victim_alive, "hits": hits,
        "victim_file": victim_file, "new_sleepers": set(_sleepers()) - sleepers_before,
        "victim_before": victim_before, "victim_after": victim_after, "ipc_before": ipc_before,
        "ipc_after": _sysv_objects(), "leftover_workers": _gone(set(_workers(scratch))),
        "rss_growth_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before,
    }
    if pwned.exists():
        pwned.unlink()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30
    for path in CORPUS:
        head = _header(path.read_text())
        assert head.get("attack") and head.get("expect") in {"static", "runtime", "contract", "ok"}, path.name
        assert "|" not in head.get("cause", ""), f"{path.name}: one cause, not alternatives"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
@pytest.mark.slow
def test_hostile_verdict(corpus, path):
    head = _header(path.read_text())
    verdict = corpus["verdicts"][path.name]
    explained = verdict.explain()
    assert verdict.stage == head["expect"], explained
    assert verdict.ok == (head["expect"] == "ok")
    if head.get("cause", "").strip():  # the error names the cause: the layer that stopped it
        said = ((verdict.error or "") + " ".join(verdict.details)).lower()
        assert head["cause"].strip().lower() in said, explained
    if not verdict.ok:
        assert verdict.error and "\n" not in verdict.error
    assert set(verdict.to_json()) <= {"ok", "stage", "error", "components", "flags"}
    json.dumps(verdict.to_json())
    if path.stem.startswith("legit_"):  # an honest reward is never flagged
        assert verdict.flags == [], verdict.flags
    for expected in filter(None, (x.strip() for x in head.get("flagged", "").split(";"))):
        assert any(expected in flag for flag in verdict.flags), (expected, verdict.flags)
    if verdict.stage not in ("static",) and "bypass" not in head.get("flags", ""):
        assert "seccomp" in verdict.isolation and "audit-hook" in verdict.isolation, verdict.isolation


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
@pytest.mark.slow
def test_hostile_had_no_effect(corpus, path):
    verdict = corpus["verdicts"][path.name]
    everything = json.dumps(verdict.to_json()) + verdict.explain() + verdict.log
    assert SECRET not in everything
    assert "root:" not in everything  # no line of /etc/shadow or /etc/passwd came back


@pytest.mark.slow
def test_corpus_side_effects(corpus):
    assert not corpus["pwned"].exists(), "a reward wrote outside the sandbox"
    assert not (corpus["tmp"] / "target").exists()
    assert corpus["victim_file"].read_text() == "keep me"
    assert corpus["hits"] == [], "a reward connected to the test's socket"
    assert corpus["victim_alive"], "a reward killed another process"
    assert corpus["new_sleepers"] == set(), "a reward started processes"
    assert corpus["rss_growth_kb"] < 512 * 1024  # the memory bombs stayed in their workers
    assert corpus["victim_after"] == corpus["victim_before"], "a reward stopped or re-scheduled a sibling"
    assert corpus["ipc_after"] == corpus["ipc_before"], "a reward left SysV IPC objects behind"
    assert corpus["leftover_workers"] == set(), "a worker or jail outlived its command"


# --------------------------------------------------------------------------------------------
# single properties
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_state_mutation_does_not_reach_simulation_or_fitness(task):
    """Same seed, random actions: a reward that scribbles over its State sees the same episodes and
    worker-side fitness as one that does not (State tensors are fresh copies; fitness runs first)."""
    mutating = (HOSTILE / "mutate_state.py").read_text()
    benign = mutating.split("def compute_reward")[0] + (
        "def compute_reward(s):\n    z = s.qpos[:, 0] * 0.0\n    return z, {\"z\": z}\n")
    limits = WorkerLimits(wall_seconds=60, memory_bytes=2 * 1024**3)
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(lambda src: run_worker({"mode": "check", "task": task.to_dict(), "source": src,
                                                "steps": 400, "seed": 3}, limits), [mutating, benign])
    assert a.ok and b.ok, (a.error, b.error)
    assert a.result["stats"]["episodes"] == b.result["stats"]["episodes"]
    assert a.result["stats"]["num_episodes"] == b.result["stats"]["num_episodes"] > 0


def test_state_tensors_are_fresh_copies(task):
    import numpy as np

    from rewardgen.contract.state import StateBuffers

    buffers = StateBuffers(task.schema, task.model, 2)
    buffers.qpos[:] = 1.0
    state = buffers.to_state()
    state.qpos.add_(5.0)
    state.body_pos[task.schema.bodies[0]].zero_()
    assert np.all(buffers.qpos == 1.0)
    assert state.qpos.data_ptr() != buffers.qpos.ctypes.data


def test_static_refusal_spawns_nothing(task):
    res = run_worker({"mode": "check", "task": task.to_dict(), "source": "import os\n", "steps": 8})
    assert res.stage == "static" and res.returncode is None and "import of 'os'" in res.error


def test_isolation_layers_reported(task):
    res = run_worker({"mode": "check", "task": task.to_dict(), "source": GOOD, "steps": 8},
                     WorkerLimits(wall_seconds=60, memory_bytes=2 * 1024**3))
    assert res.ok, res.error
    for layer in ("rlimits", "static-validation", "seccomp", "audit-hook", "restricted-builtins"):
        assert layer in res.isolation
    if "netns" not in res.isolation:  # degraded gracefully, and said so
        assert any("network namespace" in w for w in res.warnings)
    plain = run_worker({"mode": "check", "task": task.to_dict(), "source": GOOD, "steps": 8}, sandboxed=False)
    assert plain.ok and plain.isolation == []


def test_check_reward_ok_and_explain(task):
    verdict = check_reward(GOOD, task, steps=16)
    assert verdict.ok and verdict.stage == "ok" and verdict.error is None
    assert verdict.to_json() == {"ok": True, "stage": "ok", "error": None, "components": ["still", "up"]}
    assert "accepted" in verdict.explain()
    bad = check_reward(GOOD.replace("return up + still", "x = 1 / 0\n    return up + still"), task, steps=16)
    assert bad.stage == "runtime" and "ZeroDivisionError" in bad.error and bad.line == 8
    assert "line 8" in bad.explain() and "x = 1 / 0" in bad.explain()
