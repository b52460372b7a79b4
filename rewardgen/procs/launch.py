"""The one way the orchestrator starts a process: ``launch``, forked from the zygote or fresh.

Forked from this command's zygote (``rewardgen.procs.zygote``: the imports already paid) when there
is one, else a fresh ``python -s -m module``; either way held by the same ``Confinement``
(``rewardgen.procs.confine``), with frames in on its standard input and out on its result pipe
(``rewardgen.procs.frames``) and its output kept bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO, Protocol

from rewardgen.procs import zygote
from rewardgen.procs.confine import BoundedLog, Confinement

#: the result pipe's descriptor number in a child forked by the zygote
RESULT_FD = 3


class _Handle(Protocol):
    pid: int

    @property
    def returncode(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


class Child:
    """A launched child: ``pid``; ``stdin`` (frames to it); ``results`` (the read end of its result
    pipe); ``log`` (its stdout and stderr, bounded, read by a thread of its own); ``started``:
    "zygote", "fresh", or "started a fresh ... process: no zygote (why)"."""

    def __init__(self, handle: _Handle, started: str, stdin: IO[bytes], output: IO[bytes], results: int,
                 output_bytes: int):
        self._handle = handle
        self.pid = handle.pid
        self.started = started
        self.stdin = stdin
        self.results = results
        self.log = BoundedLog(output_bytes)
        self._pump = threading.Thread(target=self._read_output, args=(output,), daemon=True,
                                      name="rewardgen-child-output")
        self._pump.start()

    def _read_output(self, output: IO[bytes]) -> None:
        read = getattr(output, "read1", output.read)  # what has arrived, not a whole buffer's worth
        with output:
            for chunk in iter(lambda: read(65536), b""):
                self.log.feed(chunk)

    @property
    def returncode(self) -> int | None:
        return self._handle.returncode

    @property
    def peak_rss_kb(self) -> int | None:
        """Its peak RSS (its own children's included) as the zygote reaped it; None when fresh."""
        return getattr(self._handle, "maxrss_kb", None)

    @property
    def cpu_seconds(self) -> float | None:
        """The CPU time it used (its own children's included) as the zygote reaped it; None when fresh."""
        return getattr(self._handle, "cpu_seconds", None)

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (negative: the signal); ``subprocess.TimeoutExpired`` after ``timeout``."""
        return self._handle.wait(timeout)

    def kill_group(self) -> None:
        """Kill its process group (all it started), and wait for it a little."""
        if isinstance(self._handle, subprocess.Popen):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        else:  # the zygote kills the group of a child it has not reaped yet
            self._handle.kill()
        try:
            self._handle.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def finish(self) -> None:
        """After it exited: read the rest of its output and close our ends."""
        self._pump.join(timeout=5)
        for close in (self.stdin.close, lambda: os.close(self.results)):
            try:
                close()
            except OSError:
                pass


def launch(module: str, confinement: Confinement, *, home: str, cwd: str | None = None,
           argv: tuple[str, ...] = (), fresh: bool = False, output_bytes: int = 256 * 1024,
           what: str = "worker") -> Child:
    """Start ``python -m module [argv] --result-fd N`` held by ``confinement``: forked from this
    command's zygote when there is one (and ``fresh`` is false), else a fresh process; a zygote that
    was wanted and could not serve is named in ``Child.started`` ("started a fresh ``what`` process:
no zygote (why)"). ``home`` is its scratch folder
    (HOME, TMPDIR), ``cwd`` its working directory (default ``home``)."""

    env = confinement.environment(home)
    cwd = home if cwd is None else cwd
    why = None
    z = None if fresh else zygote.shared()
    if z is not None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        read_fd, write_fd = os.pipe()
        request = zygote.SpawnRequest(module=module, argv=[*argv, "--result-fd", str(RESULT_FD)], env=env, cwd=cwd,
                                      fds={0: in_r, 1: out_w, 2: out_w, RESULT_FD: write_fd}, confinement=confinement)
        try:
            child = z.spawn(request)
        except zygote.ZygoteUnavailable as exc:
            for fd in (in_r, in_w, out_r, out_w, read_fd, write_fd):
                os.close(fd)
            why = str(exc)
        else:
            for fd in (in_r, out_w, write_fd):
                os.close(fd)
            return Child(child, "zygote", os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"), read_fd, output_bytes)
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-s", "-m", module, *argv, "--result-fd", str(write_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env,
            pass_fds=(write_fd,), start_new_session=True, preexec_fn=confinement.apply)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    assert proc.stdin is not None and proc.stdout is not None  # both are pipes
    started = "fresh" if why is None else f"started a fresh {what} process: no zygote ({why})"
    return Child(proc, started, proc.stdin, proc.stdout, read_fd, output_bytes)
