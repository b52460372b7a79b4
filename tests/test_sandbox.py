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
import signal
import socket
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from rewardgen.check import CheckVerdict, check_reward
from rewardgen.guard import SECCOMP_DENY, reward_torch
from rewardgen.sandbox import WorkerLimits, run_worker
from rewardgen.tasks import get_task
from rewardgen.validate import ValidationError, ensure_valid, validate_source

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


def test_seccomp_denylist_keeps_threads():
    assert "clone" not in SECCOMP_DENY and "clone3" not in SECCOMP_DENY
    assert {"fork", "vfork", "execve", "socket", "ptrace"} <= set(SECCOMP_DENY)
