"""``export_policy``: a candidate's trained policy as a torch module people load without rewardgen.

``policy.npz`` is rewardgen's own exchange format (plain arrays the trusted evaluator rebuilds). For use
elsewhere the export folder holds:

- ``policy.pt``: the weights and the facts needed to act (observation mean and variance, clip,
  activation, the env's action range, which env and task), as plain tensors, numbers and strings that
  ``torch.load(weights_only=True)`` reads;
- ``policy.py``: ``rewardgen/inspect/policy_loader.py`` verbatim, a short file that needs only torch
  and rebuilds the module (``policy.load("policy.pt")``);
- ``policy.onnx`` (when the ``onnx`` package is installed, ``rewardgen[onnx]``): the same computation
  as an ONNX graph (``rewardgen.inspect.policy_onnx``).

The module acts as the trusted evaluator does, rescaling included: ``Task.make_env`` gives the policy
actions in [-1, 1] and rescales them to the env's range, so the exported module returns the env's own
actions and works on a plain ``gymnasium.make(env_id)``. The export is checked against the evaluator's
policy on random observations before anything is written.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardgen.contract.policy import MAX_POLICY_BYTES, DeterministicPolicy, PolicyExport, PolicyFormatError
from rewardgen.errors import UserError, flatten
from rewardgen.store import RUN_FILE, RunRecord, RunStore, atomic_write_bytes, candidate_label
from rewardgen.tasks.spec import Task, box, space_dims, task_from_dict

LOADER = Path(__file__).resolve().parent / "policy_loader.py"
POLICY_PT, POLICY_PY, POLICY_ONNX = "policy.pt", "policy.py", "policy.onnx"


class PolicyExportError(UserError):
    """The run or candidate has no policy to export or play; the message is for the user."""


@dataclass
class TrainedPolicy:
    """One candidate's trained policy, with the run and task it belongs to."""

    store: RunStore
    run: RunRecord
    task: Task
    generation: int
    candidate: int
    export: PolicyExport
    fitness: float | None

    @property
    def label(self) -> str:
        return candidate_label(self.generation, self.candidate)


def trained_policy(run_dir: Path, candidate: tuple[int, int] | None = None) -> TrainedPolicy:
    """The policy of ``candidate`` (generation, candidate), default the run's best, read and checked:
    PolicyExportError (or another UserError) with one line for the user when there is none."""
    store = RunStore.open(Path(run_dir))
    run = store.read_run()
    if candidate is None:
        best = run.get("best")
        if not (isinstance(best, dict) and isinstance(best.get("generation"), int)
                and isinstance(best.get("candidate"), int)):
            raise PolicyExportError(f"run {store.path.name} has no best candidate yet; name one with --candidate "
                                    "(e.g. g0c1)")
        candidate = (best["generation"], best["candidate"])
    g, c = candidate
    label = candidate_label(g, c)
    gen = store.read_generation(g)
    count = len(gen.get("candidates") or []) if isinstance(gen, dict) else 0
    if c >= count:
        raise PolicyExportError(f"run {store.path.name} has no candidate {label}"
                                + (f" (generation {g} has {count}: c0 to c{count - 1})" if count else
                                   f" (it has no generation {g})"))
    metrics = store.read_metrics(g, c)
    raw = store.read_policy(g, c, MAX_POLICY_BYTES)
    if raw is None:
        if metrics is None:
            why = "it has not finished training"
        else:
            m = metrics if isinstance(metrics, dict) else {}
            why = f"it {m.get('status', 'failed')}" + (f": {flatten(m['error'], 160)}" if m.get("error") else "")
        raise PolicyExportError(f"candidate {label} of {store.path.name} has no trained policy ({why}); "
                                "pick another with --candidate")
    try:
        export = PolicyExport.from_bytes(raw)
    except PolicyFormatError as exc:
        raise PolicyExportError(f"the policy of {label} is not a valid policy file: {exc}") from None
    task = task_from_dict(run["task"], where=str(store.path / RUN_FILE))
    env = task.make_env()
    try:
        export.validate(*space_dims(env))
    except PolicyFormatError as exc:
        raise PolicyExportError(f"the policy of {label} does not fit the task {task.id}: {exc}") from None
    finally:
        env.close()
    fitness = (metrics or {}).get("fitness") if isinstance(metrics, dict) else None
    return TrainedPolicy(store, run, task, g, c, export, fitness if isinstance(fitness, (int, float)) else None)


def action_range(task: Task) -> tuple[np.ndarray, np.ndarray, bool]:
    """The env's own action range (low, high) and whether ``Task.make_env`` rescales [-1, 1] onto it."""
    env = task.make_env()
    try:
        space = box(env.unwrapped.action_space)
        low, high = np.asarray(space.low, dtype=np.float32), np.asarray(space.high, dtype=np.float32)
    finally:
        env.close()
    return low, high, not (np.allclose(low, -1.0) and np.allclose(high, 1.0))


def torch_module_record(trained: TrainedPolicy) -> dict[str, Any]:
    """What ``policy.pt`` holds: ``{"format", "state_dict", "meta"}`` (tensors, numbers, strings)."""
    import torch

    from rewardgen.inspect import policy_loader

    export, task = trained.export, trained.task
    low, high, rescale = action_range(task)
    n = export.num_layers()
    arrays = export.arrays
    t = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}
    state = {"obs_mean": t["obs_mean"], "obs_var": t["obs_var"],
             "action_low": torch.as_tensor(low), "action_high": torch.as_tensor(high)}
    for i in range(n):
        state[f"layers.{i}.weight"], state[f"layers.{i}.bias"] = t[f"w{i}"], t[f"b{i}"]
    meta = {
        "architecture": {"obs_dim": int(arrays["obs_mean"].shape[0]),
                         "hidden": [int(arrays[f"w{i}"].shape[0]) for i in range(n - 1)],
                         "act_dim": int(arrays[f"w{n - 1}"].shape[0]), "activation": export.activation,
                         "clip_obs": float(export.clip_obs), "epsilon": float(export.epsilon), "rescale": bool(rescale)},
        "env_id": task.env_id, "env_kwargs": _plain(task.env_kwargs or {}), "episode_length": int(task.episode_length),
        "task": task.id, "description": task.description.strip(), "candidate": trained.label,
        "run": trained.store.path.name, "trusted_fitness": trained.fitness,
        "fitness": _plain(task.fitness), "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return {"format": policy_loader.FORMAT, "state_dict": state, "meta": meta}


def _plain(value: Any) -> Any:
    """``value`` as JSON's types (what ``torch.load(weights_only=True)`` accepts in ``meta``)."""
    import json

    return json.loads(json.dumps(value, default=str))


def check_module(record: dict[str, Any], export: PolicyExport, samples: int = 256, seed: int = 0) -> float:
    """Largest difference between the loader's module built from ``record`` and the evaluator's policy
    (rescaled like ``Task.make_env``) on random observations; RuntimeError above 1e-5."""
    import torch

    from rewardgen.inspect import policy_loader

    buf = io.BytesIO()
    torch.save(record, buf)
    buf.seek(0)
    module = policy_loader.load(buf)
    arch = record["meta"]["architecture"]
    rng = np.random.default_rng(seed)
    obs = rng.normal(0.0, 3.0, (samples, arch["obs_dim"])).astype(np.float32)
    expected = DeterministicPolicy(export)(obs)
    if arch["rescale"]:
        low = record["state_dict"]["action_low"].numpy()
        high = record["state_dict"]["action_high"].numpy()
        expected = low + (expected + 1.0) * 0.5 * (high - low)
    got = module.act(obs)
    gap = float(np.max(np.abs(got - expected)))
    if not gap <= 1e-5:
        raise RuntimeError(f"the exported module differs from the evaluator's policy by {gap:g}")
    return gap


def export_policy(run_dir: Path, candidate: tuple[int, int] | None, out_dir: Path, force: bool = False,
                  onnx: bool = True) -> dict[str, Any]:
    """Write the policy of ``candidate`` (default: the run's best) to the folder ``out_dir``:
    ``policy.pt``, ``policy.py`` and, with ``onnx`` and the ``onnx`` package, ``policy.onnx``.

    The folder must be new or empty (``force``: files of these names are replaced). Returns
    ``{"dir", "files", "candidate", "onnx", "max_difference"}``; ``onnx`` says why there is no ONNX
    file when there is none."""
    import torch

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PolicyExportError(f"-o {out_dir} is a file; --policy writes a folder (policy.pt, policy.py, ...)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise PolicyExportError(f"-o {out_dir} is a folder that is not empty; pass --force to replace its policy "
                                "files, or choose a new folder")
    if not out_dir.parent.is_dir():
        raise PolicyExportError(f"-o {out_dir}: the folder {out_dir.parent} does not exist")
    trained = trained_policy(run_dir, candidate)
    record = torch_module_record(trained)
    gap = check_module(record, trained.export)
    buf = io.BytesIO()
    torch.save(record, buf)
    files = {POLICY_PT: buf.getvalue(), POLICY_PY: LOADER.read_bytes()}
    onnx_note = "not asked for"
    if onnx:
        from rewardgen.inspect.policy_onnx import OnnxUnavailable, onnx_model_bytes

        try:
            files[POLICY_ONNX] = onnx_model_bytes(record)
            onnx_note = "written"
        except OnnxUnavailable as exc:
            onnx_note = str(exc)
    try:
        out_dir.mkdir(exist_ok=True)
        for name, data in files.items():
            atomic_write_bytes(out_dir / name, data)
    except OSError as exc:
        raise PolicyExportError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    return {"dir": str(out_dir), "files": sorted(files), "candidate": trained.label, "onnx": onnx_note,
            "max_difference": gap, "env_id": trained.task.env_id, "task": trained.task.id}


__all__ = ["POLICY_ONNX", "POLICY_PT", "POLICY_PY", "PolicyExportError", "TrainedPolicy", "action_range",
           "check_module", "export_policy", "torch_module_record", "trained_policy"]
