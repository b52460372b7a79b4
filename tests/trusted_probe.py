"""A trusted child that reports what it sees of its own process (tests of the trusted children only).

Run by ``run_trusted_child("tests.trusted_probe", job, ...)`` as the evaluator is: its answer holds its
limits, which of the orchestrator's secrets it can see, its open descriptors and its job; given
``{"lie": true}`` it answers a list instead of an object.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any


def answer(job: dict[str, Any]) -> Any:
    if job.get("lie"):  # an answer of the wrong shape (a list, not an object)
        return ["not", "an", "object"]
    listing = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    fds = sorted(int(x) for x in os.listdir(listing) if int(x) != listing)
    os.close(listing)
    open_fds = []
    for fd in fds:
        try:
            os.readlink(f"/proc/self/fd/{fd}")
            open_fds.append(fd)
        except OSError:
            pass  # the listing's own descriptors, closed by now
    return {"as": resource.getrlimit(resource.RLIMIT_AS)[0], "core": resource.getrlimit(resource.RLIMIT_CORE)[0],
            "secrets": [k for k, v in os.environ.items() if v in ("sk-test-secret", "tok-secret")],
            "fds": open_fds, "result_fd": int(sys.argv[sys.argv.index("--result-fd") + 1]), "job": job,
            "env": dict(os.environ), "cwd": os.getcwd()}
