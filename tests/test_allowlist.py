"""The validator as an allowlist (issue 31, item 3): sound for what it allows, and no honest reward lost.

- every honest reward the repository holds (``honest_rewards``: the offline proposer's library and
  templates, the sparse baselines, the prompt's and README's rewards, the LLM transcripts, the test
  rewards) is accepted;
- the validator's earlier bypass (``operator.attrgetter`` reached through real torch submodules) and
  its relatives are refused: real submodules, namespaces read from a plain variable, attribute names
  built at runtime, a class whose ``self`` is bound to a module, stores outside the reward's class;
- each allowlisted name, read on every kind of object a reward can hold, reaches nothing but functions,
  numbers, tensors and the four allowed namespaces; the jail's ``torch`` view holds no real submodule.
"""

from __future__ import annotations

import math
import types
import warnings

import pytest
import torch
import torch.nn.functional as F
from honest_rewards import honest_rewards

from rewardgen.sandbox import allowed
from rewardgen.sandbox.validate import validate_source

HONEST = honest_rewards()


def test_the_honest_corpus_is_large_and_complete():
    where = {label.split(":")[0].split("#")[0] for label, _ in HONEST}
    assert {"library", "params", "sparse", "prompts/system.j2", "jail warm-up", "README.md"} <= where
    assert sum(label.startswith("transcript:") for label, _ in HONEST) >= 12 or not any(
        label.startswith("transcript:") for label, _ in HONEST)
    assert len(HONEST) >= 80


@pytest.mark.parametrize("label, source", HONEST, ids=[label for label, _ in HONEST])
def test_every_honest_reward_is_accepted(label, source):
    assert validate_source(source) == [], label


def _reward(body: str, head: str = "import torch\nimport torch.nn.functional as F\n") -> str:
    return head + "\n\ndef compute_reward(s):\n" + "".join(f"    {ln}\n" for ln in body.splitlines()) \
        + "    z = s.qpos[:, 0] * 0.0\n    return z, {'z': z}\n"


@pytest.mark.parametrize("body, expected", [
    # the earlier bypass: real submodules, then attrgetter with a name built at runtime
    ("op = torch.nn.modules.container.operator\nos = op.attrgetter('o' + 's')(torch.nn.modules.module.torch)",
     ".modules"),
    ("m = F.torch", ".torch"),
    ("t = torch\nm = t.functional", "namespace .functional"),
    ("m = torch.functional", "torch.functional"),
    ("m = torch.nn.modules", "torch.nn.modules"),
    ("m = torch.utils.data", ".utils"),
    ("m = torch.Tensor.numpy", ".numpy"),
    ("m = s.qpos.numpy()", ".numpy"),
    ("m = torch.empty(1000)", ".empty"),
    ("m = s.qpos.grad_fn", ".grad_fn"),
    ("m = s.qpos.untyped_storage()", ".untyped_storage"),
    ("m = hasattr(torch, 'sa' + 've')", "built at runtime"),
    ("m = hasattr(torch, 'save')", "hasattr(..., 'save')"),
    ("m = getattr(torch, 'exp')", "'getattr'"),
    ("m = f'{torch.nn.modules}'", ".modules"),
    ("m = '{0.nn}'.format(torch)", "format fields"),
    ("F.relu = abs", "monkeypatching"),
    ("t = F\nt.relu = abs", "own attribute .relu"),
    ("match torch:\n    case object(nn=x):\n        pass", "'object'"),
    ("m = torch.set_default_dtype", ".set_default_dtype"),
])
def test_the_bypass_class_is_refused(body, expected):
    issues = " | ".join(str(i) for i in validate_source(_reward(body)))
    assert expected.lower() in issues.lower(), issues


@pytest.mark.parametrize("head, expected", [
    ("import torch.nn.modules", "torch.nn.modules"),
    ("from torch.nn import modules", "torch.nn.modules"),
    ("from torch import functional", "torch.functional"),
    ("import torch.utils", "torch.utils"),
    ("from torch.nn.functional import torch", "torch.nn.functional.torch"),
    ("import operator", "import of 'operator'"),
])
def test_imports_are_an_allowlist(head, expected):
    issues = " | ".join(str(i) for i in validate_source(_reward("pass", head)))
    assert expected in issues, issues


def test_a_reward_may_name_attributes_of_its_own_that_no_real_object_carries():
    ok = '''
import torch

class Shaper:
    def __init__(self, scale):
        self.scale = scale

    def shaped(self, x):
        return torch.exp(-self.scale * x)


def compute_reward(s):
    k = Shaper(2.0)
    r = k.shaped(s.qpos[:, 0]) + 0.0 * k.scale
    return r, {"r": r}
'''
    assert validate_source(ok) == []
    for name in ("system", "torch", "modules"):  # names real objects carry: on a module they would reach it
        bad = ok.replace("self.scale", f"self.{name}").replace("k.scale", f"k.{name}")
        assert f"own attribute .{name} has the name" in " ".join(str(i) for i in validate_source(bad)), name
    patched = ok.replace("self.scale = scale", "self.relu = scale")  # stored under a listed name: F.relu
    assert "own attribute .relu" in " ".join(str(i) for i in validate_source(patched))


def _reachable_objects() -> dict[str, object]:
    x = torch.zeros(2, 2)
    return {"torch": torch, "torch.nn": torch.nn, "F": F, "linalg": torch.linalg, "special": torch.special,
            "math": math, "tensor": x, "bool tensor": x > 0, "dtype": torch.float32, "device": torch.device("cpu"),
            "Size": x.shape, "finfo": torch.finfo(torch.float32), "max(dim)": torch.max(x, 1),
            "svd": torch.linalg.svd(x), "Tensor": torch.Tensor, "F.relu": F.relu, "torch.exp": torch.exp,
            "x.sum": x.sum, "dict": {}, "list": [], "str": "", "int": 0, "float": 0.0, "range": range(2),
            "slice": slice(1), "lambda": (lambda: 0), "generator": (i for i in ())}


def test_allowlisted_names_reach_nothing_dangerous():
    """Every listed name, on every kind of object a reward holds: never a module but the allowed
    namespaces and math, never a frame, code object or interpreter object."""
    safe_modules = {torch, torch.nn, F, torch.linalg, torch.special, math}
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for where, obj in _reachable_objects().items():
            for name in sorted(allowed.ATTRIBUTES - set(allowed.NAMESPACES)):
                try:
                    value = getattr(obj, name)
                except Exception:
                    continue
                if isinstance(value, types.ModuleType) or isinstance(value, (types.FrameType, types.CodeType)) \
                        or (isinstance(value, type) and value.__module__ in ("builtins",) and value not in
                            (bool, int, float, complex, str, list, tuple, dict, set, slice, range)):
                    bad.append(f"{where}.{name} -> {value!r}")
    assert not bad, bad
    assert torch.functional not in safe_modules  # the one real submodule a namespace name reaches: refused by path


def test_the_jails_torch_holds_no_real_submodule():
    view = allowed.reward_torch()
    seen, stack = [], [("torch", view)]
    while stack:
        path, mod = stack.pop()
        for name, value in vars(mod).items():
            if isinstance(value, types.ModuleType):
                assert value.__name__ in allowed.NAMESPACE_NAMES and value is not getattr(torch, name, None), path
                stack.append((f"{path}.{name}", value))
                seen.append(f"{path}.{name}")
    assert sorted(seen) == ["torch.linalg", "torch.nn", "torch.nn.functional", "torch.special"]
    assert not hasattr(view.nn, "modules") and not hasattr(view, "functional") and not hasattr(view.nn.functional, "torch")
    assert view.exp is torch.exp and view.nn.functional.relu is F.relu


def test_listed_names_exist():
    """The lists name real functions (no typo leaves a reward's honest call refused for nothing)."""
    assert {n for n in allowed.TORCH if not hasattr(torch, n)} == set()
    assert {n for n in allowed.FUNCTIONAL if not hasattr(F, n)} == set()
    assert {n for n in allowed.LINALG if not hasattr(torch.linalg, n)} == set()
    assert {n for n in allowed.SPECIAL if not hasattr(torch.special, n)} == set()
