"""The trained policy taken home: ``rewardgen export RUN --policy -o DIR`` (policy.pt, policy.py, policy.onnx).

The slow test trains a real run, exports its policy with the CLI, builds a fresh virtual environment
with torch alone (no rewardgen, no numpy, no gymnasium), loads the export there and checks that it
gives the actions rewardgen's trusted evaluator sent to the env for the observations of its own
evaluation episodes. The fast tests check the module against the evaluator's policy for an env whose
actions are rescaled and one whose are not, and the ONNX graph against both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import cli, last_json, mlp_policy


def _trained(task_id: str):
    from rewardgen.inspect.policy_export import TrainedPolicy
    from rewardgen.store import RunStore
    from rewardgen.tasks.spec import get_task

    task = get_task(task_id)
    return TrainedPolicy(RunStore(Path("/nonexistent/run")), {}, task, 1, 3, mlp_policy(task, seed=4, scale=1.5), 0.5)


def _evaluator_actions(task, export, obs: np.ndarray) -> np.ndarray:
    """What rewardgen's evaluator sends to the env for ``obs``: its policy's action through
    ``Task.make_env``'s rescaling wrapper (when there is one)."""
    from rewardgen.contract.policy import DeterministicPolicy

    env = task.make_env()
    try:
        actions = DeterministicPolicy(export)(obs.astype(np.float32))
        return np.stack([np.asarray(env.action(a)) if hasattr(env, "action") else a for a in actions])
    finally:
        env.close()


@pytest.mark.parametrize("task_id, rescaled", [("inverted-pendulum-balance", True), ("hopper-hop", False)])
def test_the_module_acts_as_the_evaluator_does(task_id: str, rescaled: bool) -> None:
    from rewardgen.inspect import policy_loader
    from rewardgen.inspect.policy_export import check_module, torch_module_record

    trained = _trained(task_id)
    record = torch_module_record(trained)
    assert record["meta"]["architecture"]["rescale"] is rescaled
    assert record["meta"]["candidate"] == "g1c3" and record["meta"]["env_id"] == trained.task.env_id
    assert check_module(record, trained.export) <= 1e-5
    module = policy_loader.Policy(**{k: v for k, v in record["meta"]["architecture"].items()})
    module.load_state_dict(record["state_dict"])
    obs = np.random.default_rng(1).normal(0, 4, (300, record["meta"]["architecture"]["obs_dim"]))
    expected = _evaluator_actions(trained.task, trained.export, obs)
    got = module.act(obs.astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    if rescaled:  # the env's own range, not [-1, 1]
        assert np.abs(got).max() > 1.5


def test_a_module_that_differs_from_the_evaluator_is_never_written() -> None:
    from rewardgen.inspect.policy_export import check_module, torch_module_record

    trained = _trained("inverted-pendulum-balance")
    record = torch_module_record(trained)
    record["state_dict"]["obs_var"] = record["state_dict"]["obs_var"] * 4  # a normalisation that is not the run's
    with pytest.raises(RuntimeError, match="differs from the evaluator"):
        check_module(record, trained.export)


@pytest.mark.parametrize("task_id", ["inverted-pendulum-balance", "hopper-hop"])
def test_the_onnx_graph_computes_the_same_actions(task_id: str) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from rewardgen.inspect.policy_export import torch_module_record
    from rewardgen.inspect.policy_onnx import onnx_model_bytes

    trained = _trained(task_id)
    record = torch_module_record(trained)
    model = onnx.load_from_string(onnx_model_bytes(record))
    assert {p.key: p.value for p in model.metadata_props}["candidate"] == "g1c3"
    obs = np.random.default_rng(2).normal(0, 4, (200, record["meta"]["architecture"]["obs_dim"]))
    action, normalized = ReferenceEvaluator(model).run(None, {"obs": obs.astype(np.float32)})
    expected = _evaluator_actions(trained.task, trained.export, obs)
    # another runtime sums the matrix products in another order: equal to float32 rounding
    np.testing.assert_allclose(action, expected, rtol=1e-6, atol=1e-5)
    assert np.abs(normalized).max() <= 1.0


# ----- the real thing: a trained run, the CLI, a fresh venv with torch only
FRESH_CHECK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
try:
    import rewardgen  # noqa: F401
    sys.exit("rewardgen is importable in the fresh venv")
except ImportError:
    pass
import torch
import policy
pi = policy.load(sys.argv[1] + "/policy.pt")
data = json.load(open(sys.argv[2]))
obs = torch.tensor(data["obs"], dtype=torch.float32)
actions = pi.act(obs)
gap = (actions - torch.tensor(data["actions"], dtype=torch.float32)).abs().max().item()
print(json.dumps({"gap": gap, "env_id": pi.meta["env_id"], "candidate": pi.meta["candidate"],
                  "shape": list(actions.shape), "torch": torch.__version__}))
"""


@pytest.fixture(scope="session")
def torch_only_python(tmp_path_factory) -> Path:
    """A fresh virtual environment with torch alone (the pinned CPU wheel), no rewardgen. pip's
    --no-compile leaves byte-compiling to the first import, of only the modules the check imports: most of
    the install's time went to compiling all of torch's files."""
    venv = tmp_path_factory.mktemp("torch-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    res = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", "torch==2.13.0"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return python


@pytest.mark.slow
def test_exported_policy_in_a_fresh_venv_acts_as_the_trusted_evaluator(runs_dir: Path, tmp_path: Path,
                                                                        torch_only_python: Path) -> None:
    from rewardgen.contract.policy import PolicyExport
    from rewardgen.sim.episode import run_episode
    from rewardgen.store import RunStore
    from rewardgen.tasks.fitness import make_fitness
    from rewardgen.tasks.spec import task_from_dict

    res = cli("evolve", "--task", "inverted-pendulum-balance", "--samples", "2", "--generations", "1", "--steps",
              "3000", "--no-video", "--llm", "offline", "--runs-dir", str(runs_dir), "--json", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = last_json(res.stdout)
    run_dir, best = Path(summary["run_dir"]), summary["best"]
    out = tmp_path / "take-home"
    res = cli("export", str(run_dir), "--policy", "-o", str(out))
    assert res.returncode == 0, res.stderr
    label = f"g{best['generation']}c{best['candidate']}"
    assert f"policy of {label}" in res.stdout
    assert {"policy.pt", "policy.py"} <= {p.name for p in out.iterdir()}

    # the observations of the trusted evaluator's own episodes, and the actions it sent to the env
    store = RunStore.open(run_dir)
    task = task_from_dict(store.read_run()["task"], where="run.json")
    export = PolicyExport.from_bytes((store.cand_dir(best["generation"], best["candidate"]) / "policy.npz").read_bytes())
    from rewardgen.contract.policy import DeterministicPolicy

    inner = DeterministicPolicy(export)
    env = task.make_env()
    seen_obs, sent = [], []

    def recording(obs):
        action = inner(obs)
        seen_obs.append(np.asarray(obs[0], dtype=np.float64).tolist())
        sent.append(np.asarray(env.action(action[0]), dtype=np.float64).tolist())  # what reaches the env
        return action

    fitness = make_fitness(task.fitness, task.schema)
    for ep in range(2):
        run_episode(task, env, recording, fitness, 10_000 + ep)
    env.close()
    assert len(seen_obs) >= 10 and max(abs(a[0]) for a in sent) > 1.0  # the pendulum's range is +-3
    data = tmp_path / "episodes.json"
    data.write_text(json.dumps({"obs": seen_obs, "actions": sent}))
    script = tmp_path / "check.py"
    script.write_text(FRESH_CHECK)

    res = subprocess.run([str(torch_only_python), str(script), str(out), str(data)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    answer = json.loads(res.stdout.strip().splitlines()[-1])
    assert answer["candidate"] == label and answer["env_id"] == "InvertedPendulum-v5"
    assert answer["shape"] == [len(seen_obs), 1]
    assert answer["gap"] <= 1e-5, answer

    # the ONNX file (when the onnx package is here) gives the same actions too
    if (out / "policy.onnx").exists():
        import onnx
        from onnx.reference import ReferenceEvaluator

        action, _ = ReferenceEvaluator(onnx.load(str(out / "policy.onnx"))).run(
            None, {"obs": np.asarray(seen_obs, dtype=np.float32)})
        np.testing.assert_allclose(action, np.asarray(sent), rtol=1e-6, atol=1e-5)

    # bad input: one line, exit 2, nothing written
    before = sorted(p.name for p in out.iterdir())
    for args, needle in ((["-o", str(out)], "not empty"), (["-o", str(tmp_path / "x"), "--candidate", "g0c9"],
                                                           "no candidate g0c9"),
                         (["-o", str(tmp_path / "y"), "--candidate", "zz"], "named like g1c3")):
        res = cli("export", str(run_dir), "--policy", *args)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr, res.stderr
    assert sorted(p.name for p in out.iterdir()) == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
