"""The policy exchange format: plain arrays, never pickles.

Trainers (which run next to untrusted reward code) export the deterministic actor as named float
arrays plus a small JSON-able header. The trusted evaluator rebuilds the network from those arrays
itself, so nothing executable crosses from a worker to the evaluator.

Arrays: ``obs_mean``, ``obs_var`` (observation normalisation), ``w0``, ``b0``, ... ``wK``, ``bK``
(hidden layers then the action head). The action is ``clip(head(x), -1, 1)``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: hidden-layer activations a policy may name (torch is imported only where a policy is run: the
#: orchestrator reads and checks policy files without it)
ACTIVATIONS = ("tanh", "relu", "elu")
MAX_PARAMETERS = 50_000_000
MAX_POLICY_BYTES = 4 * MAX_PARAMETERS + 4096


class PolicyFormatError(ValueError):
    """A policy file that does not match the format (wrong keys, shapes, activation)."""


def load_npz(raw: bytes, max_bytes: int, max_arrays: int = 4096) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` made by ``np.savez``, read without trusting it: each member's
    declared shape and dtype are checked (plain numbers only, no objects or pickles) and the total
    size bounded by ``max_bytes`` *before* anything is decompressed, and no member may inflate to
    more than it declared. A zip bomb costs its reader ``max_bytes`` at most. ValueError otherwise."""
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"not an npz archive: {exc}") from None
    if len(members) > max_arrays:
        raise ValueError(f"npz archive has {len(members)} members, more than {max_arrays}")
    arrays: dict[str, np.ndarray] = {}
    budget = max_bytes
    with archive:
        for member in members:
            if not member.filename.endswith(".npy"):
                raise ValueError(f"npz member {member.filename[:80]!r} is not an array")
            try:
                with archive.open(member) as fp:
                    version = np.lib.format.read_magic(fp)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read_header(fp)
                    if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None:
                        raise ValueError(f"array {member.filename[:80]!r} has dtype {dtype.str}, not plain numbers")
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if nbytes < 0 or nbytes > budget:
                        raise ValueError(f"npz arrays declare more than {max_bytes} bytes")
                    budget -= nbytes
                    data = fp.read(nbytes + 1)  # decompresses at most one byte past the declared size
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
                raise ValueError(f"unreadable npz member {member.filename[:80]!r}: {exc}") from None
            if len(data) != nbytes:
                raise ValueError(f"array {member.filename[:80]!r} does not hold the {nbytes} bytes it declares")
            array = np.frombuffer(bytearray(data), dtype=dtype).reshape(shape, order="F" if fortran else "C")
            arrays[member.filename[:-4]] = array
    return arrays


@dataclass
class PolicyExport:
    arrays: dict[str, np.ndarray]
    activation: str = "tanh"
    clip_obs: float = 10.0
    epsilon: float = 1e-8

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        header = np.frombuffer(f"{self.activation}|{self.clip_obs}|{self.epsilon}".encode(), dtype=np.uint8)
        # Any: numpy types savez's keywords as allow_pickle's bool, and these are arrays named by the policy
        named: dict[str, Any] = {k: np.asarray(v, dtype=np.float32) for k, v in self.arrays.items()}
        np.savez(buf, __header__=header, **named)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> PolicyExport:
        try:
            arrays = load_npz(raw, MAX_POLICY_BYTES, max_arrays=64)
        except ValueError as exc:
            raise PolicyFormatError(f"not a policy file: {exc}") from None
        try:
            activation, clip_obs, epsilon = bytes(arrays.pop("__header__")).decode().split("|")
            export = cls(arrays, activation, float(clip_obs), float(epsilon))
        except (KeyError, ValueError, UnicodeDecodeError):
            raise PolicyFormatError("policy file has no valid header") from None
        export.validate()
        return export

    def num_layers(self) -> int:
        return sum(1 for k in self.arrays if k.startswith("w"))

    def validate(self, obs_dim: int | None = None, act_dim: int | None = None) -> None:
        """Check keys, shapes and sizes so a malformed file fails with a clear message."""
        if self.activation not in ACTIVATIONS:
            raise PolicyFormatError(f"unknown activation {self.activation!r}")
        n = self.num_layers()
        expected = {"obs_mean", "obs_var"} | {f"w{i}" for i in range(n)} | {f"b{i}" for i in range(n)}
        if n == 0 or set(self.arrays) != expected:
            raise PolicyFormatError(f"policy arrays {sorted(self.arrays)} do not match {sorted(expected)}")
        if sum(a.size for a in self.arrays.values()) > MAX_PARAMETERS:
            raise PolicyFormatError("policy is implausibly large")
        width = self.arrays["obs_mean"].shape
        if len(width) != 1 or self.arrays["obs_var"].shape != width:
            raise PolicyFormatError("obs_mean/obs_var must be vectors of the same length")
        prev = width[0]
        for i in range(n):
            w, b = self.arrays[f"w{i}"], self.arrays[f"b{i}"]
            if w.ndim != 2 or w.shape[1] != prev or b.shape != (w.shape[0],):
                raise PolicyFormatError(f"layer {i} has shapes {w.shape}/{b.shape}, expected (*, {prev})")
            prev = w.shape[0]
        if obs_dim is not None and width[0] != obs_dim:
            raise PolicyFormatError(f"policy expects {width[0]} observations, the task has {obs_dim}")
        if act_dim is not None and prev != act_dim:
            raise PolicyFormatError(f"policy outputs {prev} actions, the task has {act_dim}")


class DeterministicPolicy:
    """The actor rebuilt from a PolicyExport: normalise, MLP, clip to [-1, 1]."""

    def __init__(self, export: PolicyExport):
        import torch

        export.validate()
        self._torch = torch
        t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in export.arrays.items()}
        self._mean, self._std = t["obs_mean"], torch.sqrt(t["obs_var"] + export.epsilon)
        self._layers = [(t[f"w{i}"], t[f"b{i}"]) for i in range(export.num_layers())]
        self._act = {"tanh": torch.tanh, "relu": torch.relu, "elu": torch.nn.functional.elu}[export.activation]
        self._clip = export.clip_obs

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
            x = torch.clamp((x - self._mean) / self._std, -self._clip, self._clip)
            for i, (w, b) in enumerate(self._layers):
                x = x @ w.T + b
                if i < len(self._layers) - 1:
                    x = self._act(x)
            return torch.clamp(x, -1.0, 1.0).numpy()


def policy_job(policy: bytes | Path) -> dict[str, str]:
    """The policy as a child's job carries it: its bytes (base64), never a path into a run for the
    child to open. A ``Path`` is read here, through ``RunFiles`` (no symlink followed)."""
    import base64

    from rewardgen.runfiles import RunFiles

    if not isinstance(policy, (bytes, bytearray)):
        policy = RunFiles(Path(policy).parent).read_bytes(Path(policy).name, MAX_POLICY_BYTES)
    return {"policy_b64": base64.b64encode(bytes(policy)).decode("ascii")}


def policy_from_job(job: dict[str, Any]) -> PolicyExport:
    """The child's side of ``policy_job``."""
    import base64

    return PolicyExport.from_bytes(base64.b64decode(job["policy_b64"], validate=True))
