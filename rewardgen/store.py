"""The run store: ``runs/<run-id>/`` holds everything a run did, written atomically.

Layout::

    runs/<id>/run.json                       config, status, per-generation summary, best
    runs/<id>/run.lock                       held while a process works on the run
    runs/<id>/gen-NNN/generation.json        the generation's proposals (written once, before training)
    runs/<id>/gen-NNN/cand-NN/reward.py      candidate source
    runs/<id>/gen-NNN/cand-NN/proposal.json  what the proposer said about it (origin, parent, genome)
    runs/<id>/gen-NNN/cand-NN/train.log      the worker's captured output (bounded)
    runs/<id>/gen-NNN/cand-NN/policy.npz     the trained actor (plain arrays)
    runs/<id>/gen-NNN/cand-NN/metrics.json   verdict, trusted fitness, training statistics (written last)
    runs/<id>/gen-NNN/cand-NN/video.mp4      the policy's rollout, rendered in the background after sealing
    runs/<id>/gen-NNN/cand-NN/video.json     the video's length and frames, or why it was not rendered
    runs/<id>/live.json                      what the process working on the run is doing now (per-candidate
                                             progress, time left; ``run.progress.LiveFile``), for the web UI

Every file above except ``run.lock`` is written atomically: a temp file in the same directory,
fsync'd, then renamed over the target (``atomic_write_bytes``; ``video.mp4`` by the video renderer
the same way; ``train.log`` too: a continued training rewrites it whole, new part appended), so a
reader (or a run resumed after ``kill -9``) sees either the old file or the new one, never half. Not
atomic, on purpose: ``run.lock`` and ``feedback.lock`` (only their ``flock`` matters; the pid in
``run.lock`` is a hint for people), the web UI's ``web-job.log`` (a background job's output,
appended as it comes and only shown) and the TensorBoard event files under ``tensorboard/``
(streamed by TensorBoard's writer; nothing reads them back). A candidate whose ``metrics.json``
exists is finished and is never retrained.

A run directory may come from someone else, so ``RunStore`` opens its files only through
``rewardgen.runfiles.RunFiles`` (no symlink followed, reads resolved inside the run, writes that
cannot land outside it). The module-level ``atomic_write_*`` and ``read_json`` are for files that are
not a run's (a report or export the user names with ``-o``, a benchmark's own table).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict, cast

from rewardgen.errors import UserError
from rewardgen.runfiles import CorruptFileError, RefusedFileError, RunFiles, RunStoreError  # noqa: F401 - re-exported

# ----- every file name of the run store (the layout above), spelled here only
RUN_FILE = "run.json"
RUN_LOCK_FILE = "run.lock"
GENERATION_FILE = "generation.json"
REWARD_FILE = "reward.py"
PROPOSAL_FILE = "proposal.json"
TRAIN_LOG = "train.log"
POLICY_FILE = "policy.npz"
METRICS_FILE = "metrics.json"
VIDEO_FILE = "video.mp4"
VIDEO_INFO_FILE = "video.json"
FINAL_FILE = "final.json"
#: one finished final training, beside its policy in ``final/<method>-seed<k>/`` (what a rerun reuses)
FINAL_RUN_FILE = "final-run.json"
REPORT_FILE = "report.html"
#: the largest reward.py read back (the validator takes 100,000 characters)
MAX_SOURCE_BYTES = 1024 * 1024
FEEDBACK_FILE = "feedback.json"
#: the working process's live progress (``run.progress.LiveFile``); meaningful while ``run.lock`` is held
LIVE_FILE = "live.json"



def candidate_label(generation: int, candidate: int) -> str:
    """How a candidate is named everywhere a person or an LLM reads it (CLI, report, web, JSON,
    prompts): ``g1c3`` is generation 1, candidate 3; it cannot be read as a fraction."""
    return f"g{int(generation)}c{int(candidate)}"


_CANDIDATE_REF = re.compile(r"\s*(?:[gG](\d{1,6})\s*[cC](\d{1,6})|(\d{1,6})\s*/\s*(\d{1,6}))\s*")


def parse_candidate_label(text: Any) -> tuple[int, int] | None:
    """``"g1c3"`` (or ``"1/3"``, the form runs made before labels were used and a person may still
    type) -> (1, 3); None for anything else."""
    m = _CANDIDATE_REF.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        return None
    g, c = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
    return int(g), int(c)


def candidate_from_text(text: str) -> tuple[int, int]:
    """``parse_candidate_label`` for a label a person typed: UserError, with the forms it takes, for
    anything else."""
    parsed = parse_candidate_label(text)
    if parsed is None:
        raise UserError(f"a candidate is named like g1c3 (generation 1, candidate 3) or 1/3, got {str(text)[:80]!r}")
    return parsed


def as_label(ref: Any) -> Any:
    """A candidate reference read from a run (a proposal's parent, a feedback item) as its label;
    anything that is not a reference comes back unchanged."""
    parsed = parse_candidate_label(ref)
    return candidate_label(*parsed) if parsed else ref


class Stage(StrEnum):
    """Where a candidate's step ended, as its records store it (``status`` of ``rung-R.json``,
    ``metrics.json``, ``final-run.json``): ``ok``, or the stage that failed. The values are the stored
    strings (a StrEnum compares equal to them and is written as them)."""

    OK = "ok"
    PROPOSAL = "proposal"  # the proposer gave no usable reward (e.g. an LLM answer without code)
    STATIC = "static"  # refused by the static checks
    LOAD = "load"  # the source did not load in the jail
    CONTRACT = "contract"  # the reward broke its output contract
    RUNTIME = "runtime"  # the reward failed while running
    SANDBOX = "sandbox"  # the jail itself failed
    JOB = "job"  # the worker refused its job
    TIMEOUT = "timeout"
    CRASH = "crash"  # the worker died (or could not be run)
    PROTOCOL = "protocol"  # the worker's answer broke the frame protocol (or held no policy)
    LOST = "lost"  # the executor lost the job twice
    EVALUATION = "evaluation"  # the trusted evaluation of the policy failed


class Fate(StrEnum):
    """How the schedule ended a candidate (``metrics.json`` ``fate``)."""

    FAILED = "failed"  # its last slice failed
    ELIMINATED = "eliminated"  # cut early on trusted fitness (or by the step budget)
    FINAL = "final"  # trained the schedule's whole budget


# ----- the records the store holds (JSON objects; a reader tolerates keys it does not know)
class RunRecord(TypedDict, total=False):
    """``run.json``: the run's config and task, its status, a summary per generation and the best."""

    id: str
    kind: str  # "evolve" or "train"
    status: str  # "created", "running", "awaiting_feedback", "finished", "failed", ...
    created: str
    config: dict[str, Any]  # an EvolveConfig as a dict, ``steps`` resolved
    task: dict[str, Any]  # Task.to_dict()
    proposer: str
    generations: list[GenerationSummary]
    best: dict[str, Any] | None  # {"generation", "candidate", "fitness"}
    tokens: dict[str, int]
    error: str | None
    updated: str
    confirm: dict[str, Any] | None  # the confirmation's record (``run/confirm.py``)


class GenerationSummary(TypedDict, total=False):
    """One generation in ``run.json``: every candidate's verdict, the env-steps spent, its best."""

    generation: int
    candidates: list[dict[str, Any]]  # {"candidate", "status", "fitness", "success", "error", "fate", ...}
    tokens: dict[str, int] | None
    steps_spent: int
    best: dict[str, Any] | None


class GenerationRecord(TypedDict, total=False):
    """``gen-NNN/generation.json``: the proposals, written once before any training (marks it complete)."""

    generation: int
    proposer: str
    candidates: list[ProposalRecord]
    tokens: dict[str, int] | None
    created: str


class ProposalRecord(TypedDict, total=False):
    """``cand-NN/proposal.json``: where a candidate came from (``Proposal.record``)."""

    proposer: str
    origin: str
    parent: str | None  # "G/C"
    notes: list[str]
    genome: list[dict[str, Any]] | None
    error: str | None


class RungRecord(TypedDict, total=False):
    """``cand-NN/rung-R.json``: one slice of a candidate's training under the schedule, and its evaluation."""

    rung: int
    target_steps: int
    status: str  # "ok" or the failing stage
    error: str | None
    fitness: float | None
    check: dict[str, Any]  # the smoke check's verdict (first rung)
    training: dict[str, Any]  # the reward's component books
    extra: dict[str, Any]  # the trainer's report (TrainOutput.report)
    env_steps: int  # trained in this slice
    env_steps_total: int
    train_seconds: float
    trainer: str | None
    env_steps_per_second: float
    evaluation: dict[str, Any]  # the trusted evaluator's answer
    evaluation_seconds: float
    restarted: str
    traceback: str | None  # a failed slice's
    flags: list[str]  # what the reward tried in its jail during this slice


class CandidateMetrics(TypedDict, total=False):
    """``cand-NN/metrics.json``: a finished candidate (its presence means: never retrain it)."""

    generation: int
    candidate: int
    status: str
    error: str | None
    fitness: float | None  # the trusted fitness: the only number selection reads
    success: bool
    schedule: str
    fate: str
    rungs: int
    check: dict[str, Any] | None
    traceback: str | None
    evaluation: dict[str, Any]
    extra: dict[str, Any]
    trainer: str | None
    env_steps_per_second: float
    train_seconds: float
    training: dict[str, Any]
    hacking: dict[str, Any] | None
    env_steps: int
    steps_spent: int
    flags: list[str]  # what the reward tried in its jail (refused system calls, guard switched off)


def gen_dirname(generation: int) -> str:
    """``gen-NNN``: a generation's folder."""
    return f"gen-{generation:03d}"


def final_dirname(method: str, seed_index: int) -> str:
    """Where one training of a run's final evaluation lives, relative to the run directory."""
    return f"final/{method}-seed{seed_index}"


def cand_dirname(candidate: int) -> str:
    """``cand-NN``: a candidate's folder inside its generation's."""
    return f"cand-{candidate:02d}"


def rung_file(rung: int) -> str:
    """``rung-R.json``: one slice of a candidate's training under the schedule, and its evaluation."""
    return f"rung-{rung}.json"


def state_file(rung: int) -> str:
    """``state-R.npz``: the trainer's resume state after rung R (the next rung continues from it)."""
    return f"state-{rung}.npz"


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename), with the permissions a
    plain ``open()`` would give (``mode`` less the umask), not the temp file's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        _remove(tmp)
        raise
    publish(Path(tmp), path, mode)


def publish(tmp: Path, path: Path, mode: int = 0o666) -> None:
    """Put a finished temp file (in ``path``'s folder) in place atomically: its data fsync'd, the
    permissions a plain ``open()`` would give (``mode`` less the umask), renamed over ``path``, the
    folder fsync'd. The temp file is removed when any step fails. For files another writer produced
    (an encoder writing the video); ``atomic_write_bytes`` for data in memory."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _remove(tmp: str | Path) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    """The JSON value in ``path``: every read of a run-store JSON file goes through here.

    Policy: a file that does not exist gives None (not written yet: writes are atomic, so a file
    is whole or absent); one that exists but cannot be read or does not parse raises
    ``CorruptFileError`` (a ``RunStoreError``, a user error) naming the path. A caller that must
    go on with a damaged run (the report, the web UI) catches it; a caller that needs an object
    checks the type itself."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptFileError(path, str(exc)) from None


def check_runs_dir(runs_dir: Path) -> Path:
    """``runs_dir``, created if missing; RunStoreError (one line, for the user) when it is a file or
    cannot be created or written."""
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise RunStoreError(f"--runs-dir {runs_dir} is not a directory")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunStoreError(f"cannot create the runs directory {runs_dir} ({exc.strerror or exc}); "
                            f"choose another with --runs-dir") from None
    if not os.access(runs_dir, os.W_OK | os.X_OK):
        raise RunStoreError(f"cannot write to the runs directory {runs_dir}: permission denied "
                            f"(choose another with --runs-dir)")
    return runs_dir


def new_run_id(task_id: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{task_id}"


class RunStore(RunFiles):
    """One run directory: its layout, records and lock. Only the orchestrator writes here; every file
    is opened through ``RunFiles`` (``self.read_json(path)``, ``self.write_json(path, obj)``, ...)."""

    def __init__(self, path: Path):
        super().__init__(Path(path))
        self.path = self.root
        self._lock_fd: int | None = None

    # ----- creation and loading
    @classmethod
    def create(cls, runs_dir: Path, run_id: str, run: dict) -> RunStore:
        """Create ``runs_dir/run_id`` (a suffix when taken) with its ``run.json``.

        Raises RunStoreError, with nothing left behind, when ``runs_dir`` is not a directory that
        can be written (a file, /proc, a read-only mount, no permission)."""
        runs_dir = check_runs_dir(Path(runs_dir))
        path = runs_dir / run_id
        suffix = 1
        while os.path.lexists(path):
            suffix += 1
            path = runs_dir / f"{run_id}-{suffix}"
        try:
            path.mkdir()
        except OSError as exc:
            raise RunStoreError(f"cannot create a run in {runs_dir} ({exc.strerror or exc}); "
                                f"choose a writable --runs-dir") from None
        store = cls(path)
        try:
            store.write_run(cast(RunRecord, {**run, "id": path.name}))  # the caller's run.json, named
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)  # never leave a run without its run.json
            raise RunStoreError(f"cannot write a run in {runs_dir} ({exc.strerror or exc}); "
                                f"choose a writable --runs-dir") from None
        return store

    @classmethod
    def open(cls, path: Path) -> RunStore:
        path = Path(path)
        if not path.is_dir():
            raise RunStoreError(f"no run directory at {path}")
        store = cls(path)
        if store.kind(RUN_FILE) == "link":
            store.read_run()  # RefusedFileError: says it is a link
        if not store.is_file(RUN_FILE):
            raise RunStoreError(f"{path} is not a run directory (no {RUN_FILE})")
        run = store.read_run()
        for key in ("config", "task", "status"):
            if key not in run:
                raise RunStoreError(f"corrupt run file {path / RUN_FILE}: missing '{key}'")
        return store

    def read_run(self) -> RunRecord:
        run = self.read_json(RUN_FILE)
        if run is None:
            raise RunStoreError(f"{self.path} has no {RUN_FILE}")
        if not isinstance(run, dict):
            raise RunStoreError(f"corrupt run file {self.path / RUN_FILE}: not an object")
        return cast(RunRecord, run)  # a JSON object; readers tolerate missing keys (total=False)

    def write_run(self, run: RunRecord) -> None:
        self.write_json(RUN_FILE, run)

    # ----- locking: one process works on a run at a time
    def lock(self) -> None:
        """Hold ``run.lock`` (``flock``) until ``unlock``; RunStoreError when another process holds it.
        The file is opened without following a link and must be a regular file of one name, so a
        hostile run cannot make this truncate or write anything outside it."""
        fd = self.open_lock(RUN_LOCK_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunStoreError(f"run {self.path} is in use by another rewardgen process") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def lock_held(self) -> bool:
        """Whether some process holds ``run.lock`` (i.e. is working on the run right now)."""
        if not self.is_file(RUN_LOCK_FILE):
            return False
        fd = self.open_fd(RUN_LOCK_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # ----- layout
    def gen_dir(self, generation: int) -> Path:
        return self.path / gen_dirname(generation)

    def cand_dir(self, generation: int, candidate: int) -> Path:
        return self.gen_dir(generation) / cand_dirname(candidate)

    def read_generation(self, generation: int) -> GenerationRecord | None:
        """The generation's proposal record, or None if it was not written yet."""
        return self.read_json(self.gen_dir(generation) / GENERATION_FILE)

    def read_metrics(self, generation: int, candidate: int) -> CandidateMetrics | None:
        """The candidate's verdict, or None while it is not finished."""
        return self.read_json(self.cand_dir(generation, candidate) / METRICS_FILE)

    def read_source(self, generation: int, candidate: int) -> str:
        return self.read_text(self.cand_dir(generation, candidate) / REWARD_FILE, MAX_SOURCE_BYTES)

    def read_live(self) -> dict | None:
        """``live.json`` (what the working process last said it was doing), None when missing or not an object."""
        live = self.read_json(LIVE_FILE)
        return live if isinstance(live, dict) else None

    def read_policy(self, generation: int, candidate: int, max_bytes: int) -> bytes | None:
        """The candidate's ``policy.npz`` as bytes (parse them with ``contract.policy.PolicyExport``), None
        when it has none; RunStoreError when it is larger than ``max_bytes``, a link or cannot be read."""
        path = self.cand_dir(generation, candidate) / POLICY_FILE
        try:
            return self.read_bytes(path, max_bytes)
        except FileNotFoundError:
            return None
        except RunStoreError:
            raise
        except OSError as exc:
            raise RunStoreError(f"cannot read {path}: {exc.strerror or exc}") from None
