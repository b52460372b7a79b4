"""The one protocol and the one confinement record: frames refuse every wrong shape, the record holds
what every child gets.

The frame classes are shared by sender, checker and receiver (``rewardgen.procs.frames``): what a
worker sends round-trips exactly, and a frame of the wrong shape (an unknown or missing field, a
wrong type, a number that is not finite where a finite one is meant, too many entries) is refused
with a reason before any of it is used. Real processes show the same at both ends of a pipe: a
worker given a job frame of the wrong shape reports stage "job", and the trusted side refuses a
trusted child's answer of the wrong shape.
"""

from __future__ import annotations

import io
import math
import os
import resource
import tempfile

import pytest

from rewardgen.procs.confine import DISPLAY_ENV, Confinement
from rewardgen.procs.frames import (
    CHILD_FRAMES,
    DEBUG_FRAMES,
    JOB_FRAMES,
    WORKER_FRAMES,
    Answer,
    Check,
    DebugResult,
    Error,
    FrameError,
    FrameWriter,
    Isolation,
    JailReport,
    Job,
    Progress,
    ResumeHeader,
    SchemaError,
    TrainResult,
    parse_frame,
    read_frames,
    read_job,
)
from rewardgen.procs.launch import launch
from rewardgen.procs.process import WorkerLimits, worker_confinement

STATS = {"components": {"upright": [{"step": 64, "mean": 0.5, "min": 0.0, "max": 1.0}]},
         "total_reward": [{"step": 64, "mean": 0.5, "min": 0.0, "max": float("nan")}],
         "episodes": [{"step": 64, "episodes": 2, "length": 30.0, "return": 1.5, "fitness": 0.2}],
         "num_episodes": 2, "reward_fitness_correlation": None}
FRAMES = [
    (Progress(128, 1024), WORKER_FRAMES),
    (Isolation(["seccomp", "pidns"], ["no network namespace"]), WORKER_FRAMES),
    (Check(64, STATS), WORKER_FRAMES),
    (JailReport(3, {"openat": 3}, False, 20, 2.0), WORKER_FRAMES),
    (ResumeHeader(1024, 4096), WORKER_FRAMES),
    (TrainResult(1024, STATS, 3.5, "ppo", {"slice_env_steps": 1024, "env_steps_per_second": 300.0,
                                           "losses": {"value_loss": 0.1}, "timing": {"sim_s": 1.0}}), WORKER_FRAMES),
    (TrainResult(0), WORKER_FRAMES),
    (Error("runtime", "ZeroDivisionError", "line 3"), WORKER_FRAMES),
    (DebugResult(["upright"], [{"kind": "random", "episode": 0, "seed": 1, "length": 30, "terminated": True,
                                "fitness": 0.5}], "upright", "mean"), DEBUG_FRAMES),
    (Answer({"fitness": 1.0}), CHILD_FRAMES),
    (Job({"mode": "check"}), JOB_FRAMES),
]


def _same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN (statistics keep it)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("frame,accepted", FRAMES, ids=lambda f: type(f).__name__)
def test_every_frame_round_trips_through_the_wire(frame, accepted):
    buf = io.BytesIO()
    r, w = os.pipe()
    FrameWriter(w).send(frame)
    os.close(w)
    with os.fdopen(r, "rb") as stream:
        buf.write(stream.read())
    buf.seek(0)
    [(kind, value)] = list(read_frames(buf))
    back = parse_frame(value, accepted)
    assert kind == "json" and type(back) is type(frame) and _same(back.to_json(), frame.to_json())


WRONG = [
    # (frame, accepted, what the refusal names)
    ({"type": "progress", "steps": 1, "total": 2, "note": "hi"}, WORKER_FRAMES, "note"),
    ({"type": "progress", "steps": 1}, WORKER_FRAMES, "total"),
    ({"type": "progress", "steps": 1.0, "total": 2}, WORKER_FRAMES, "progress.steps"),
    ({"type": "isolation", "layers": ["x"] * 41}, WORKER_FRAMES, "isolation.layers"),
    ({"type": "isolation", "layers": [7]}, WORKER_FRAMES, "isolation.layers"),
    ({"type": "check", "env_steps": 5, "stats": {"components": {}, "secret": 1}}, WORKER_FRAMES, "secret"),
    ({"type": "check", "env_steps": 5, "stats": {"components": {"a": [{"step": 1, "path": 2}]}}}, WORKER_FRAMES,
     "path"),
    ({"type": "jail", "refused": 1, "syscalls": {}, "guard_off": 0, "calls": 1}, WORKER_FRAMES, "guard_off"),
    ({"type": "jail", "refused": 1, "syscalls": {}, "guard_off": False, "calls": 1, "deadline": float("inf")},
     WORKER_FRAMES, "jail.deadline"),
    ({"type": "jail", "refused": 1, "syscalls": {f"s{i}": 1 for i in range(17)}, "guard_off": False, "calls": 1},
     WORKER_FRAMES, "jail.syscalls"),
    ({"type": "resume_state", "env_steps": 1, "bytes": -4}, WORKER_FRAMES, "resume_state.bytes"),
    ({"type": "result", "env_steps": 5, "seconds": float("nan")}, WORKER_FRAMES, "result.seconds"),
    ({"type": "result", "env_steps": 5, "seconds": -1.0}, WORKER_FRAMES, "result.seconds"),
    ({"type": "result", "env_steps": 5, "policy_path": "/etc/passwd"}, WORKER_FRAMES, "policy_path"),
    ({"type": "result", "env_steps": 5, "extra": {"losses": {"a": "low"}}}, WORKER_FRAMES, "losses"),
    ({"type": "result", "env_steps": 5, "extra": {"timing": {f"t{i}": 1.0 for i in range(40)}}}, WORKER_FRAMES,
     "timing"),
    ({"type": "result", "env_steps": 5, "extra": {"env_reward": "yes"}}, WORKER_FRAMES, "env_reward"),
    ({"type": "result", "env_steps": 5, "extra": {"unknown": 1}}, WORKER_FRAMES, "unknown"),
    ({"type": "result", "components": [], "episodes": []}, WORKER_FRAMES, "components"),  # a debug result
    ({"type": "result", "components": ["a"], "episodes": [{"episode": 0, "seed": 0, "length": 1, "fitness": 0.0,
                                                           "kind": "evil"}]}, DEBUG_FRAMES, "kind"),
    ({"type": "result", "components": ["a"], "episodes": [{"episode": 0, "seed": 0, "length": 1}]}, DEBUG_FRAMES,
     "fitness"),
    ({"type": "error", "stage": "runtime", "error": 5}, WORKER_FRAMES, "error.error"),
    ({"type": "answer", "value": [1, 2]}, CHILD_FRAMES, "answer.value"),
    ({"type": "result", "env_steps": 5}, CHILD_FRAMES, "unknown frame type"),
    ({"type": "job", "job": "train"}, JOB_FRAMES, "job"),
    ({"type": "progress", "steps": 1, "total": 2}, JOB_FRAMES, "unknown frame type"),
]


@pytest.mark.parametrize("value,accepted,named", WRONG, ids=[f"{i}-{w[0].get('type')}" for i, w in enumerate(WRONG)])
def test_a_frame_of_the_wrong_shape_is_refused(value, accepted, named):
    with pytest.raises(SchemaError) as info:
        parse_frame(value, accepted)
    assert named in str(info.value)


def test_a_job_must_be_one_job_frame_within_its_bound():
    def stream(*frames: tuple[str, object]) -> io.BytesIO:
        r, w = os.pipe()
        out = FrameWriter(w)
        for kind, value in frames:
            out.json(value) if kind == "json" else out.bytes(value)  # type: ignore[arg-type]  # the test's own mix
        os.close(w)
        with os.fdopen(r, "rb") as f:
            return io.BytesIO(f.read())

    assert read_job(stream(("json", {"type": "job", "job": {"mode": "check"}}))) == {"mode": "check"}
    with pytest.raises(FrameError):
        read_job(stream(("bytes", b"{}")))
    with pytest.raises(FrameError):
        read_job(stream())
    with pytest.raises(FrameError):
        read_job(stream(("json", {"type": "job", "job": {"source": "x" * 2000}})), limit=1000)
    with pytest.raises(SchemaError):
        read_job(stream(("json", {"type": "progress", "steps": 1, "total": 1})))


@pytest.mark.parametrize("frame", [b"\xff" * 16, None])
def test_a_worker_given_a_job_of_the_wrong_shape_reports_stage_job(monkeypatch, frame):
    """A real worker, fed a job that is not one ``Job`` frame (garbage; a frame of another type):
    it answers with an error frame at stage "job" and runs nothing."""
    monkeypatch.setenv("REWARDGEN_ZYGOTE", "0")
    with tempfile.TemporaryDirectory() as home:
        child = launch("rewardgen.trainers.worker", Confinement(), home=home)
        if frame is None:
            FrameWriter(child.stdin.fileno()).send(Progress(1, 1))
        else:
            child.stdin.write(frame)
        child.stdin.close()
        assert child.wait(120) == 0
        with os.fdopen(child.results, "rb", closefd=False) as stream:
            frames = [parse_frame(v) for k, v in read_frames(stream)]
        child.finish()
    assert len(frames) == 1 and isinstance(frames[0], Error) and frames[0].stage == "job", frames


def test_the_trusted_side_refuses_a_trusted_childs_answer_of_the_wrong_shape():
    from rewardgen.procs.trusted import run_trusted_child

    with pytest.raises(RuntimeError, match="malformed"):
        run_trusted_child("tests.trusted_probe", {"lie": True}, 120, "probe")


def test_one_environment_policy_an_allowlist(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("MY_TOKEN", "tok")
    monkeypatch.setenv("DISPLAY", ":9")
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    env = Confinement().environment(str(tmp_path))
    assert not {"OPENAI_API_KEY", "MY_TOKEN", "LD_PRELOAD", *DISPLAY_ENV} & set(env)
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path) and env["PYTHONHASHSEED"] == "0"
    window = Confinement(display=True, env=(("MUJOCO_GL", "glfw"),)).environment(str(tmp_path))
    assert window["DISPLAY"] == ":9" and window["MUJOCO_GL"] == "glfw" and "OPENAI_API_KEY" not in window


def test_one_rlimit_builder():
    limits = WorkerLimits(wall_seconds=60, memory_bytes=3 * 1024**3, file_bytes=5 * 1024**2)
    assert sorted(worker_confinement(limits).rlimits()) == sorted([
        (resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_AS, 3 * 1024**3, 3 * 1024**3),
        (resource.RLIMIT_CPU, 150, 150), (resource.RLIMIT_FSIZE, 5 * 1024**2, 5 * 1024**2)])
    cuda = worker_confinement(limits, address_limit=False).rlimits()
    assert resource.RLIMIT_AS not in [r for r, _, _ in cuda] and (resource.RLIMIT_CORE, 0, 0) in cuda
    assert worker_confinement(limits).netns and not worker_confinement(limits, sandboxed=False).netns
    assert Confinement().rlimits() == [(resource.RLIMIT_CORE, 0, 0)]
    record = Confinement(memory_bytes=1, nice=19, idle=True, env=(("MUJOCO_GL", "egl"),))
    assert Confinement.from_dict(record.to_dict()) == record  # as the zygote receives it


def test_a_checked_frame_keeps_what_was_sent_as_sent():
    """The run store writes what the frames hold: parsing keeps every value and the order of every key
    (an integer stays an integer), so checking changes no byte of ``metrics.json``."""
    import json

    sent = {"type": "result", "stats": {"components": {"b": [], "a": [{"step": 64, "max": 1, "min": 0.0, "mean": 0.5}]},
                                        "total_reward": [], "episodes": [], "num_episodes": 0,
                                        "reward_fitness_correlation": None},
            "env_steps": 64, "seconds": 2, "trainer": "ppo",
            "extra": {"resumed_from": 0, "slice_env_steps": 64, "env_steps_per_second": 32.0,
                      "losses": {"value_loss": 0.5}, "num_envs": 4, "timing": {"sim_s": 1.0}}}
    assert json.dumps(parse_frame(sent).to_json()) == json.dumps(sent)
    debug = {"type": "result", "components": ["a"], "episodes": [{"kind": "policy", "episode": 0, "seed": 5,
                                                                   "length": 3, "terminated": False, "fitness": 1}],
             "fitness_name": "upright", "fitness_aggregate": "mean"}
    assert json.dumps(parse_frame(debug, DEBUG_FRAMES).to_json()) == json.dumps(debug)
