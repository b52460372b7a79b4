"""A worker that reports what it sees of its own process (tests of the zygote only).

Run by ``run_worker(..., module="tests.zygote_probe")``: prints one JSON line of facts (environment,
open descriptors, limits, session, network namespace, parent, preloaded modules) and sends a result
frame, so the test reads the facts from the worker's captured output.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

from rewardgen.procs.frames import FrameWriter, TrainResult, read_job


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args()
    job = read_job(sys.stdin.buffer)
    listing = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    fds = sorted(int(x) for x in os.listdir(listing) if int(x) != listing)
    os.close(listing)
    links = {}
    for fd in fds:
        try:
            links[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the listing's own descriptors, closed by now
    facts = {
        "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
        "env": dict(os.environ), "cwd": os.getcwd(), "fds": sorted(links), "links": links,
        "limits": {name: resource.getrlimit(getattr(resource, name))[0]
                   for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE")},
        "netns": os.readlink("/proc/self/ns/net"), "torch_preloaded": "torch" in sys.modules,
        "job": job.get("seed"),
    }
    print("FACTS " + json.dumps(facts), flush=True)
    FrameWriter(args.result_fd).send(TrainResult(0))


if __name__ == "__main__":
    main()
