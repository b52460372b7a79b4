"""A trusted child's entry point: one job frame in, ``module.answer(job)`` out as one answer frame.

Started by ``rewardgen.procs.trusted.run_trusted_child`` (forked from the zygote, or as
``python -m rewardgen.procs.child --module M --result-fd N``) for the evaluator, the video renderer
and the viewer window: each is a module of ``rewardgen.evaluate`` with ``answer(job) -> dict``. A
failure is a traceback on stderr and a non-zero exit (the caller reports its last line).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rewardgen.procs.frames import Answer, FrameWriter, read_job


def main() -> None:
    parser = argparse.ArgumentParser(prog="rewardgen.procs.child", allow_abbrev=False)
    parser.add_argument("--module", required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args()
    os.set_inheritable(args.result_fd, False)
    job = read_job(sys.stdin.buffer)
    answer = importlib.import_module(args.module).answer(job)
    FrameWriter(args.result_fd).send(Answer(answer))
    sys.stdout.flush()
    sys.stderr.flush()
    # a viewer's GL context and render thread do not always survive interpreter teardown (a crash after
    # the answer is out); nothing is left to clean up, so leave at once
    os._exit(0)


if __name__ == "__main__":
    main()
