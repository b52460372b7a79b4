"""Reward export (issue 7): a standalone file that needs only gymnasium, mujoco, numpy and torch.

- the exported State equals rewardgen's StateBuffers State on the same MjData (hopper, ant: free
  joint, contacts), and the wrapper's reward equals the reward computed on rewardgen's State;
- the file trains with stable-baselines3 PPO in a subprocess (``python -I`` from a temp dir) where
  importing rewardgen is blocked.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardgen.contract.reward import load_reward
from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.inspect.export import ExportError, export_reward, parse_candidate
from rewardgen.tasks.spec import get_task

REWARD = '''"""Forward velocity, alive bonus, control cost."""
import math
import torch


def _speed(s):  # a helper of the reward's own
    return s.body_linvel["torso"][:, 0]


def compute_reward(s):
    forward = _speed(s)
    alive = torch.ones_like(forward)
    ctrl = -0.001 * (s.action ** 2).sum(dim=-1)
    upright = 0.1 * s.body_up["torso"][:, 2] + 0.0 * s.contact_force["torso"] + 0.0 * s.com_vel[:, 0]
    return forward + alive + ctrl + upright, {"forward": forward, "alive": alive, "ctrl": ctrl, "upright": upright}
'''


def make_run(root: Path, task_id: str, best: bool = True) -> Path:
    task = get_task(task_id)
    run = root / f"run-{task_id}"
    d = run / "gen-000" / "cand-01"
    d.mkdir(parents=True)
    (d / "reward.py").write_text(REWARD)
    (d / "metrics.json").write_text(json.dumps({"status": "ok", "fitness": 0.25}))
    (run / "run.json").write_text(json.dumps({
        "status": "finished", "config": {}, "task": task.to_dict(),
        "best": {"generation": 0, "candidate": 1, "fitness": 0.25} if best else None}))
    return run


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FIELDS = ("qpos", "qvel", "action", "ctrl", "step", "com_pos", "com_vel")
NAMED = ("body_pos", "body_quat", "body_linvel", "body_angvel", "body_up", "joint_pos", "joint_vel", "site_pos",
         "contact_force")


@pytest.mark.parametrize("task_id", ["hopper-hop", "ant-run"])
def test_exported_state_matches_state_buffers(tmp_path, task_id):
    out = export_reward(make_run(tmp_path, task_id), None, tmp_path / "reward_export.py")
    mod = load_module(out)
    task = get_task(task_id)
    env = mod.make_env()
    assert env.unwrapped.spec.id == task.env_id and env.spec.max_episode_steps == task.episode_length
    model = env.unwrapped.model
    buffers = StateBuffers(task.schema, model, 1)
    reference = load_reward(REWARD)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    checked = 0
    for t in range(1, 61):
        action = rng.uniform(-1, 1, task.schema.nu).astype(np.float32)
        _, r, terminated, truncated, info = env.step(action)
        ours = env.last_state
        refresh_derived(model, env.unwrapped.data)
        buffers.fill(0, env.unwrapped.data, action, t)
        theirs = buffers.to_state()
        for f in FIELDS:
            assert torch.equal(getattr(ours, f), getattr(theirs, f)), f
        for f in NAMED:
            a, b = getattr(ours, f), getattr(theirs, f)
            assert list(a) == list(b), f
            for name in b:
                assert torch.equal(a[name], b[name]), (f, name)
        assert ours.dt == theirs.dt
        total, comps = reference(theirs)
        assert r == pytest.approx(float(total[0]), abs=1e-6)
        assert info["reward_components"] == pytest.approx({k: float(v[0]) for k, v in comps.items()}, abs=1e-6)
        assert "env_reward" in info
        checked += 1
        if terminated or truncated:
            break
    assert checked >= 5
    env.close()


def test_selection_and_errors(tmp_path):
    run = make_run(tmp_path, "hopper-hop", best=False)
    with pytest.raises(ExportError, match="no best candidate"):
        export_reward(run, None, tmp_path / "x.py")
    out = export_reward(run, parse_candidate("0/1"), tmp_path / "x.py")
    text = out.read_text()
    assert "def compute_reward(s):" in text and "ENV_ID = 'Hopper-v5'" in text
    # rewardgen is imported only by the sandboxed forms, when they are made (the plain form never needs it)
    top = [n for n in ast.parse(text).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if "rewardgen" in ast.unparse(n)]
    assert "from rewardgen.procs.standalone import JailedReward" in text
    with pytest.raises(ExportError, match="no reward for candidate g0c5"):
        export_reward(run, (0, 5), tmp_path / "y.py")
    assert parse_candidate("g0c1") == parse_candidate("0/1") == (0, 1)  # the label, or the older form
    for bad in ("best", "g0", "c1", "0/", "g-1c2"):
        with pytest.raises(ExportError, match="like g1c0"):
            parse_candidate(bad)
    with pytest.raises(ExportError, match="not a run directory"):
        export_reward(tmp_path / "nope", None, tmp_path / "z.py")


TRAIN_SCRIPT = r'''
import importlib.abc, sys

class NoRewardgen(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "rewardgen" or name.startswith("rewardgen."):
            raise ImportError("rewardgen is blocked in this test")
        return None

sys.meta_path.insert(0, NoRewardgen())
sys.path.insert(0, sys.argv[1])
import reward_export
from stable_baselines3 import PPO

env = reward_export.make_env()
model = PPO("MlpPolicy", env, n_steps=512, batch_size=64, n_epochs=2, seed=0, device="cpu", verbose=0)
model.learn(total_timesteps=2048)
obs, _ = env.reset(seed=0)
total = 0.0
for _ in range(20):
    action, _ = model.predict(obs, deterministic=True)
    obs, r, term, trunc, info = env.step(action)
    total += r
    if term or trunc:
        break
assert not any(m == "rewardgen" or m.startswith("rewardgen.") for m in sys.modules)
print("OK", model.num_timesteps, sorted(info["reward_components"]), round(total, 3))
'''


@pytest.mark.slow
def test_exported_reward_trains_with_sb3_without_rewardgen(tmp_path):
    export_reward(make_run(tmp_path, "hopper-hop"), None, tmp_path / "reward_export.py")
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "train.py"), str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("OK 2048 ['alive', 'ctrl', 'forward', 'upright']"), line


# ----- an honest export (issue 31, item 2)
HOSTILE = '''import os
os.system("touch @PWNED@")


def compute_reward(s):
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
'''

# passes the old validator's idea of a reward on batches, and on one world (the exported wrapper's)
# walks to os to write the user's API key to a file; the static check refuses the walk
SINGLE_WORLD = '''import torch


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    forward = s.qvel[:, 0]
    if s.qpos.shape[0] == 1:
        os = _os()
        fd = os["open"]("@PWNED@", os["O_WRONLY"] | os["O_CREAT"])
        os["write"](fd, os["environ"].get("OPENAI_API_KEY", "no key").encode())
    return forward, {"forward": forward}
'''


def test_export_refuses_what_check_refuses(tmp_path):
    run = make_run(tmp_path, "hopper-hop")
    pwned = tmp_path / "pwned"
    (run / "gen-000" / "cand-01" / "reward.py").write_text(HOSTILE.replace("@PWNED@", str(pwned)))
    with pytest.raises(ExportError, match=r"rewardgen check refuses its reward\.py .*import of 'os'"):
        export_reward(run, None, tmp_path / "x.py")
    assert not (tmp_path / "x.py").exists() and not pwned.exists()
    from conftest import cli

    res = cli("export", str(run), "-o", str(tmp_path / "y.py"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "import of 'os'" in res.stderr
    assert not (tmp_path / "y.py").exists()


def test_importing_the_file_runs_none_of_the_reward(tmp_path):
    """The reward is data in the file: a module-level line of it (had it passed the check) does not run on
    import, and the header says in plain words where it runs."""
    from rewardgen.inspect.export import render_export

    pwned = tmp_path / "pwned"
    out = tmp_path / "tampered.py"
    out.write_text(render_export(HOSTILE.replace("@PWNED@", str(pwned)), get_task("hopper-hop").to_dict()))
    mod = load_module(out)
    assert not pwned.exists()
    assert mod.REWARD_SOURCE == HOSTILE.replace("@PWNED@", str(pwned))
    head = out.read_text()[:1500]
    assert "UNTRUSTED CODE" in head and "UNSANDBOXED, in YOUR Python process" in head
    assert "make_env(sandboxed=True)" in head and "rewardgen's jail" in head


@pytest.mark.slow
def test_sandboxed_forms_give_the_same_rewards_as_the_plain_ones(tmp_path):
    mod = load_module(export_reward(make_run(tmp_path, "hopper-hop"), None, tmp_path / "reward_export.py"))
    plain, jailed = mod.make_env(), mod.make_env(sandboxed=True)
    assert "seccomp" in jailed.jailed.layers and "netns" in jailed.jailed.layers
    rng = np.random.default_rng(0)
    try:
        for env in (plain, jailed):
            env.reset(seed=5)
        for _ in range(40):
            a = rng.uniform(-1, 1, 3).astype(np.float32)
            (_o1, r1, t1, u1, i1), (_o2, r2, t2, u2, i2) = plain.step(a), jailed.step(a)
            assert r1 == pytest.approx(r2, abs=1e-6) and i1["reward_components"] == pytest.approx(i2["reward_components"])
            assert (t1, u1) == (t2, u2)
            if t1 or u1:
                break
        vp, vj = mod.make_vec_env(4), mod.make_vec_env(4, sandboxed=True)
        for v in (vp, vj):
            v.seed(2)
            v.reset()
        for _ in range(20):
            acts = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
            (_, rp, dp, ip), (_, rj, dj, ij) = vp.step(acts), vj.step(acts)
            assert np.allclose(rp, rj, atol=1e-6) and (dp == dj).all()
            assert ip[0]["reward_components"] == pytest.approx(ij[0]["reward_components"])
        vp.close()
        vj.close()
    finally:
        plain.close()
        jailed.close()


@pytest.mark.slow
def test_the_sandboxed_form_contains_a_hostile_reward(tmp_path, monkeypatch):
    """A tampered exported file (the reward writes the user's key to a file when it sees one world): the
    sandboxed form refuses it (static check), and with the check switched off the jail contains it."""
    from rewardgen.inspect.export import render_export
    from rewardgen.procs.standalone import JailedReward, JailedRewardError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-user-key-999")
    pwned = tmp_path / "pwned"
    source = SINGLE_WORLD.replace("@PWNED@", str(pwned))
    out = tmp_path / "tampered.py"
    out.write_text(render_export(source, get_task("hopper-hop").to_dict()))
    mod = load_module(out)
    with pytest.raises(JailedRewardError, match="static check refuses"):
        mod.make_env(sandboxed=True)
    env = mod._rg_base_env()
    env.reset(seed=0)
    env.step(env.action_space.sample())
    u = env.unwrapped
    with JailedReward(source, u.model, u.frame_skip, capacity=1, validate=False) as jailed:
        jailed.fill(0, u.data, np.zeros(3, np.float32), 1)
        with pytest.raises(JailedRewardError) as info:
            jailed(1)
        said = str(info.value) + jailed.log.text()
    env.close()
    assert not pwned.exists()
    assert "sk-user-key-999" not in said
