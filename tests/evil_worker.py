"""A worker that lies: what a compromised worker could send the orchestrator (tests only).

Run as ``python -m tests.evil_worker`` by ``run_worker(..., module="tests.evil_worker")``. A job whose
source holds ``# EVIL: <mode>`` gets malformed frames instead of a training; any other job is
trained honestly by ``rewardgen.trainers.worker``. Modes:
- ``bad-env-steps``: a result whose env_steps is not an integer, then a policy;
- ``bytes-flood``: 40 bytes frames of 8 MiB (the old checkpoint pile-up);
- ``forged-stage``: an error frame with a stage no worker may report and 1 MB of text;
- ``garbage``: bytes that are not a frame at all;
- ``extra-field``: a well-typed result carrying a field no result has (a path for the orchestrator);
- ``nan-seconds``: a result whose training time is NaN.
"""

from __future__ import annotations

import re


def _run(job, out) -> None:
    from rewardgen.trainers.worker import run_job as honest

    match = re.search(r"# EVIL: (\S+)", job.source or "")
    if not match:
        return honest(job, out)
    mode = match.group(1)
    if mode == "bad-env-steps":
        out.json({"type": "result", "stats": {}, "env_steps": "a lot", "seconds": 1.0, "trainer": "ppo"})
        out.bytes(b"not a policy")
    elif mode == "bytes-flood":
        out.json({"type": "progress", "steps": 1, "total": 2})
        for _ in range(40):
            out.bytes(b"\0" * (8 * 1024 * 1024))
    elif mode == "forged-stage":
        out.json({"type": "error", "stage": "ok", "error": "x" * 1_000_000})
    elif mode == "extra-field":
        out.json({"type": "result", "stats": {}, "env_steps": 64, "seconds": 1.0, "trainer": "ppo",
                  "policy_path": "/etc/passwd"})
        out.bytes(b"not a policy")
    elif mode == "nan-seconds":
        out.json({"type": "result", "stats": {}, "env_steps": 64, "seconds": float("nan"), "trainer": "ppo"})
        out.bytes(b"not a policy")
    elif mode == "garbage":
        import os

        os.write(out._fd, b"\xff" * 64)


def main() -> None:
    from rewardgen.trainers.worker import serve

    serve(_run, "tests.evil_worker")


if __name__ == "__main__":
    main()
