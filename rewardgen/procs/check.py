"""``check_reward``: is this reward source acceptable? Static checks, then a short sandboxed run.

Used by ``rewardgen check FILE --task T [--json]`` and by evolve before training a candidate. The
dynamic part is the same sandboxed worker training uses (``run_worker`` mode "check": a short
random-action rollout through the reward, with the contract checked on every call).

Also here: ``sandbox_overhead`` (training throughput with and without the sandbox).
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Any

from rewardgen.contract.job import WorkerJob
from rewardgen.procs import WorkerLimits, WorkerResult, run_worker
from rewardgen.sandbox.validate import validate_source

CHECK_LIMITS = WorkerLimits(wall_seconds=60.0, memory_bytes=4 * 1024**3, output_bytes=64 * 1024)
_LINE = re.compile(r"(?:reward\.py line |^line |\(line )(\d+)")
_MEMORY_HINTS = ("can't allocate memory", "cannot allocate memory", "memoryerror", "bad_alloc",
                 "out of memory", "defaultcpuallocator")


@dataclass
class CheckVerdict:
    """The answer of ``check_reward``.

    :param ok: accepted (stage "ok").
    :param stage: "static" (refused before running), "runtime" (raised, was refused by the sandbox,
        or was killed for time, memory or output), "contract" (ran but returned the wrong thing, e.g.
        a non-finite or mis-shaped component) or "ok".
    :param error: one line naming the cause, with the line number when known; None when ok.
    :param components: the reward's component names (from the run; empty unless it ran).
    :param line: the candidate's line the error points at, when known.
    :param details: more lines for ``explain`` (all static issues, trimmed traceback, isolation notes).
    :param flags: what the trusted side saw the reward try in its jail (``jail_flags``: system calls
        the filter refused, the audit hook switched off); the layers held, but a reward that tries
        these is not an honest one. Empty for every honest reward.
    """

    ok: bool
    stage: str
    error: str | None = None
    components: list[str] = field(default_factory=list)
    line: int | None = None
    details: list[str] = field(default_factory=list)
    isolation: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str = field(default="", repr=False)
    log: str = field(default="", repr=False)
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"ok", "stage", "error", "components"}``, and ``"flags"`` when there are any."""
        out = {"ok": self.ok, "stage": self.stage, "error": self.error, "components": list(self.components)}
        if self.flags:
            out["flags"] = list(self.flags)
        return out

    def explain(self) -> str:
        """Multi-line text for people: what failed, where, and the source line."""
        if self.ok:
            lines = [f"accepted: the reward ran and returned {len(self.components)} component(s): "
                     + (", ".join(self.components) or "(none)")]
        else:
            what = {"static": "refused before running (static check)",
                    "runtime": "failed while running in the sandbox",
                    "contract": "broke the reward contract"}.get(self.stage, self.stage)
            lines = [f"rejected: the reward {what}", f"  cause: {self.error}"]
            if self.line:
                src = self.source.splitlines()
                lines.append(f"  where: reward.py line {self.line}")
                if 0 < self.line <= len(src):
                    lines.append(f"    {self.line:4d} | {src[self.line - 1].rstrip()}")
        for d in self.details:
            lines.extend("  " + x for x in d.rstrip().splitlines())
        lines.extend(f"  flagged: the reward {flag}" for flag in self.flags)
        if self.warnings:  # isolation layers this machine could not give (none where every layer works)
            lines.append("  sandbox notes: " + "; ".join(self.warnings))
        return "\n".join(lines)


def _line_of(text: str | None) -> int | None:
    if not text:
        return None
    m = _LINE.search(text)
    return int(m.group(1)) if m else None


def _runtime_cause(res: WorkerResult, limits: WorkerLimits) -> str:
    """One line for a worker that failed or was killed, naming the cause."""
    rc = res.returncode
    err = res.error or ""
    low = (err + "\n" + (res.log or "")[-4000:]).lower()
    if res.stage == "timeout":
        return (f"exceeded the wall-clock limit of {limits.wall_seconds:g} s and was killed "
                "(infinite loop or far too slow)")
    if res.stage == "crash":
        sig = -rc if rc is not None and rc < 0 else None
        if sig == signal.SIGXCPU:
            return "exceeded the CPU-time limit and was killed"
        if sig == signal.SIGXFSZ:
            return "exceeded the file-size limit and was killed"
        if any(h in low for h in _MEMORY_HINTS):
            return f"exceeded the memory limit ({limits.memory_bytes / 1024**3:.1f} GiB) and died"
        if sig is not None:
            name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else str(sig)
            return f"worker crashed (killed by {name}) without a verdict; the reward may exhaust memory or stack"
        return f"worker crashed ({err or 'no result'})"
    if any(h in err.lower() for h in _MEMORY_HINTS):
        return f"exceeded the memory limit ({limits.memory_bytes / 1024**3:.1f} GiB): {err}"
    if res.stage == "protocol":
        return f"worker sent malformed results: {err}"
    return err or f"failed at stage {res.stage}"


def jail_flags(jail: dict[str, Any] | None) -> list[str]:
    """One line per thing the reward tried that its jail refused, from a worker's ``jail`` frame."""
    if not jail:
        return []
    flags = []
    if jail.get("refused"):
        calls = ", ".join(f"{name} x{count}" for name, count in (jail.get("syscalls") or {}).items())
        flags.append(f"was refused {jail['refused']} system call(s) in its jail ({calls}): it tried what a reward "
                     "has no business doing (files, network, processes, signals)")
    if jail.get("guard_off"):
        flags.append("switched the sandbox's audit hook off (the kernel layers held)")
    return flags


def check_reward(source: str, task: Any, steps: int = 256, seed: int = 0, *,
                 limits: WorkerLimits | None = None, job_extra: dict[str, Any] | None = None) -> CheckVerdict:
    """Static checks, then a short run in the sandbox; never raises for problems of the reward.

    ``task`` is a ``rewardgen.tasks.spec.Task`` (or its ``to_dict()``). ``job_extra`` adds keys to the
    worker job (tests use it to switch single layers off); ``limits`` defaults to ``CHECK_LIMITS``.
    """
    limits = limits or CHECK_LIMITS
    job_extra = dict(job_extra or {})
    if job_extra.get("validate", True):
        issues = validate_source(source)
        if issues:
            first = str(issues[0]) + (f" (and {len(issues) - 1} more issue(s))" if len(issues) > 1 else "")
            return CheckVerdict(ok=False, stage="static", error=first, line=issues[0].line or None,
                                details=["all issues:", *[f"  {i}" for i in issues]] if len(issues) > 1 else [],
                                source=source)
    task_dict = task if isinstance(task, dict) else task.to_dict()
    job = WorkerJob.from_dict({"mode": "check", "task": task_dict, "source": source, "steps": int(steps),
                               "seed": int(seed), **job_extra})
    return verdict_from_result(run_worker(job, limits), source, limits)


def verdict_from_result(res: WorkerResult, source: str, limits: WorkerLimits = CHECK_LIMITS) -> CheckVerdict:
    """The check's verdict from a worker's result: a mode "check" job's, or a train job that carried
    ``check`` (the smoke check folded into its training: ``res.check`` holds what the check frame
    said; an error before that frame is the check's failure, one after it is training's)."""
    common = {"isolation": res.isolation, "warnings": res.warnings, "source": source, "log": res.log,
              "flags": jail_flags(res.jail)}
    if res.check is not None:
        comps = sorted((res.check.get("stats") or {}).get("components", {}))
        if int(res.check.get("output_bytes") or 0) > limits.output_bytes:
            return CheckVerdict(ok=False, stage="runtime", components=comps,
                                error=f"output flood: the reward printed more than {limits.output_bytes} bytes "
                                      f"({int(res.check['output_bytes']) - limits.output_bytes} bytes over)",
                                **common)
        return CheckVerdict(ok=True, stage="ok", components=comps, **common)
    if res.stage == "ok":
        comps = sorted((res.result or {}).get("stats", {}).get("components", {}))
        if res.output_dropped:
            return CheckVerdict(ok=False, stage="runtime", components=comps,
                                error=f"output flood: the reward printed more than {limits.output_bytes} bytes "
                                      f"({res.output_dropped} bytes dropped)", **common)
        return CheckVerdict(ok=True, stage="ok", components=comps, **common)
    if res.stage == "static" or (res.stage == "load" and (res.error or "").startswith("SyntaxError")):
        return CheckVerdict(ok=False, stage="static", error=res.error, line=_line_of(res.error), **common)
    if res.stage == "contract":
        return CheckVerdict(ok=False, stage="contract", error=res.error,
                            line=_line_of(res.error) or _line_of(res.traceback),
                            details=[res.traceback] if res.traceback else [], **common)
    if res.timeout_seconds:
        limits = WorkerLimits(wall_seconds=res.timeout_seconds, memory_bytes=limits.memory_bytes)
    error = _runtime_cause(res, limits)
    line = _line_of(error) or _line_of(res.traceback)
    if line and "line" not in error:
        error = f"{error} (reward.py line {line})"
    return CheckVerdict(ok=False, stage="runtime", error=error.replace("\n", " ")[:1000], line=line,
                        details=[res.traceback] if res.traceback else [], **common)
