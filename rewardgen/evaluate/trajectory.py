"""Trajectory analyser: per-step records of trusted evaluation episodes, and short factual summaries.

``record_trajectory(task, export, seed)`` replays one evaluation episode exactly as
``rewardgen.evaluate.evaluator.evaluate_policy`` runs it (same env, same seed, deterministic policy, State
filled by ``StateBuffers`` after ``refresh_derived``) and returns plain arrays. It never touches
candidate code, so it may run in the trusted evaluator process.

``summarize_episode(traj)`` turns one record into a few sentences: how long it lasted and why it
ended (the termination rule that fired, with the value that broke it), the main body's height over time, falls,
time upside-down (from ``body_up``), distance covered by the robot's centre of mass, and where it stalled.
``best_and_worst(task, export, evaluation)`` does this for the best and the worst episode of an evaluation.

Definitions (all from the State of each step):
- main body: the fitness's ``body`` parameter if it names one, else the robot's root body;
- tilt: angle between a body's z axis (``body_up``) and the same axis in the model's initial pose
  (``qpos0``: a body built lying on its side is not tilted), with the way the main body's top pointed
  at its most tilted step (+x, -x, +y or -y: the larger move of its z axis along world x or y); upside-down: the
  main body tilted more than 90 degrees (up_z < 0), said "turned more than 90 deg" (and its top "its z
  axis") where the fitness turns the body (``TURNING_FITNESSES``);
- a fall: entering a state where the main body is tilted more than 60 degrees, or (for a body that
  starts above 5 cm) its height drops below half its starting height. Not reported where the fitness
  is a rotation (a flip): turning over is the task there, not a failure;
- stalled: a window of at least 1 s in which the centre of mass moves (horizontally) slower than
  5 cm/s on average.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rewardgen.contract.policy import DeterministicPolicy, PolicyExport
from rewardgen.sim.episode import run_episode
from rewardgen.sim.termination import termination_of
from rewardgen.tasks.fitness import TURNING_FITNESSES, make_fitness
from rewardgen.tasks.spec import Task, space_dims

FALL_TILT_DEG = 60.0
STALL_SPEED = 0.05
STALL_SECONDS = 1.0


def main_body(task: Task) -> str:
    """The body a summary talks about: the fitness's ``body`` parameter, else the robot's root body."""
    schema = task.schema
    name = (task.fitness.get("params") or {}).get("body")
    if isinstance(name, str) and name in schema.bodies:
        return name
    return schema.robot_root_name


def record_trajectory(task: Task, export: PolicyExport, seed: int) -> dict[str, Any]:
    """Run one episode of the deterministic policy (env reset with ``seed``) and record it.

    Arrays (length T = steps lived): ``step``, ``time`` (s), ``height`` and ``up_z`` (main body),
    ``tilt_deg`` (T, bodies), ``com`` and ``com_vel`` (T, 3), ``fitness`` (trusted per-step value),
    ``env_reward``, ``action_sq`` (sum of squared actions). Scalars: ``seed``, ``length``,
    ``horizon``, ``terminated``, ``fitness_value`` (``Fitness.episode_value``, as evaluate reports it),
    ``dt``, ``main_body``, ``bodies``, ``start_com`` (3,). The episode runs through
    ``rewardgen.sim.episode.run_episode``, as the trusted evaluation's do.
    """
    env = task.make_env()
    try:
        export.validate(*space_dims(env))
        policy = DeterministicPolicy(export)
        fitness = make_fitness(task.fitness, task.schema)
        run = run_episode(task, env, policy, fitness, seed, task.schema.body_index(main_body(task)))
    finally:
        env.close()
    return trajectory_from_episode(task, fitness, run, seed)


def trajectory_from_episode(task: Task, fitness, run: dict[str, Any], seed: int) -> dict[str, Any]:
    """``record_trajectory``'s dict from a recorded ``run_episode``."""
    schema = task.schema
    out: dict[str, Any] = {k: np.asarray(v, dtype=np.float64) for k, v in run["rows"].items()}
    n = len(out["height"])
    out["tilt_deg"] = out["tilt_deg"].reshape(n, len(schema.bodies))
    out["com"] = out["com"].reshape(n, 3)
    if "lean_xy" in out:
        out["lean_xy"] = out["lean_xy"].reshape(n, 2)
    out["com_vel"] = out["com_vel"].reshape(n, 3)
    out["step"] = np.arange(1, n + 1)
    out["time"] = out["step"] * float(schema.dt)
    out.update(seed=int(seed), length=int(run["length"]), horizon=int(task.episode_length),
               terminated=bool(run["terminated"]), termination=termination_rules(task),
               ended_by=[e["text"] for e in run.get("ended_by") or []],
               fitness_value=fitness.episode_value(list(run["values"]), task.episode_length),
               dt=float(schema.dt), main_body=main_body(task), bodies=list(schema.bodies),
               fitness_name=fitness.name,
               start_com=np.asarray(run["start_com"], dtype=np.float64))
    return out


_RULES: dict[str, list[str]] = {}


def termination_rules(task: Task) -> list[str]:
    """What the task's env requires of an episode to go on (``rewardgen.sim.termination``), as phrases:
    ["the torso's height stays above 0.7 m", ...]; [] when nothing ends an episode early."""
    key = repr(sorted(task.to_dict().items(), key=lambda kv: kv[0]))
    if key not in _RULES:
        term = termination_of(task)
        _RULES[key] = [f"{b.meaning} stays {b.inside()}" for b in term.bounds] + \
            (["every position and velocity stays finite"] if term.nonfinite else [])
    return _RULES[key]


def _segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` is true."""
    segs, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            segs.append((start, i))
            start = None
    if start is not None:
        segs.append((start, len(mask)))
    return segs


def episode_facts(traj: dict[str, Any]) -> dict[str, Any]:
    """The numbers ``summarize_episode`` writes about (JSON-able)."""
    n = int(traj["length"])
    dt = float(traj["dt"])
    h, up = np.asarray(traj["height"]), np.asarray(traj["up_z"])
    facts: dict[str, Any] = {"seed": traj.get("seed"), "length": n, "horizon": int(traj["horizon"]),
                             "terminated": bool(traj["terminated"]), "fitness": float(traj["fitness_value"]),
                             "main_body": traj["main_body"],
                             "falls_matter": traj.get("fitness_name") not in TURNING_FITNESSES,
                             "ended_by": list(traj.get("ended_by") or [])}
    if n == 0:
        return facts
    quarters = [float(q.mean()) for q in np.array_split(h, min(4, n))]
    facts.update(height_start=float(h[0]), height_mean=float(h.mean()), height_min=float(h.min()),
                 height_max=float(h.max()),
                 height_min_step=int(np.argmin(h)) + 1, height_end=float(h[-1]), height_quarters=quarters)
    tilt = np.degrees(np.arccos(np.clip(up, -1.0, 1.0)))
    tilt_body, tilts = traj["main_body"], np.asarray(traj.get("tilt_deg", np.zeros((n, 0))))
    if tilts.size:
        j = int(np.argmax(tilts.max(axis=0)))
        facts.update(most_tilted_body=traj["bodies"][j], most_tilted_deg=float(tilts[:, j].max()))
        if tilt.max() < 1.0 and tilts[:, j].max() >= 1.0:  # e.g. a cart that never tilts: watch the pole
            tilt_body, tilt = traj["bodies"][j], tilts[:, j]
            up = np.cos(np.radians(tilt))
    fallen = tilt > FALL_TILT_DEG
    if h[0] > 0.05:
        fallen |= h < 0.5 * h[0]
    falls = _segments(fallen)
    facts.update(tilt_body=tilt_body, falls=len(falls), first_fall_step=(falls[0][0] + 1) if falls else None,
                 upside_down_fraction=float(np.mean(up < 0)), max_tilt_deg=float(tilt.max()))
    lean = traj.get("lean_xy")
    if tilt_body == traj["main_body"] and lean is not None and len(lean) == n and float(tilt.max()) >= 1.0:
        dx, dy = (float(v) for v in np.asarray(lean)[int(np.argmax(tilt))])
        axis, v = ("x", dx) if abs(dx) >= abs(dy) else ("y", dy)
        facts["max_tilt_toward"] = f"{'+' if v > 0 else '-'}{axis}"  # where its top pointed at the most tilted step
    com = np.asarray(traj["com"])
    start = np.asarray(traj.get("start_com", com[0]))
    disp = com[-1] - start
    path = float(np.linalg.norm(np.diff(np.vstack([start[None, :2], com[:, :2]]), axis=0), axis=1).sum())
    facts.update(displacement=[float(x) for x in disp], path_length=path,
                 mean_speed_x=float(disp[0] / max(n * dt, 1e-9)))
    win = max(1, round(STALL_SECONDS / dt))
    if n >= win:
        xy = np.vstack([start[None, :2], com[:, :2]])
        speed = np.linalg.norm(xy[win:] - xy[:-win], axis=1) / (win * dt)  # window ending at each step
        slow = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(speed < STALL_SPEED):
            slow[i:i + win] = True  # steps i+1 .. i+win of the episode are in the slow window
        stalls = _segments(slow)
        if stalls:
            a, b = max(stalls, key=lambda s: s[1] - s[0])
            facts.update(stalled_fraction=float(slow.mean()), longest_stall=[a + 1, b])
        else:
            facts.update(stalled_fraction=0.0, longest_stall=None)
    return facts


def tilt_text(f: dict[str, Any], turning: bool = False) -> str:
    """The largest tilt in degrees and radians (the env's termination rules are in radians) from the
    initial pose, and which way the body's z axis pointed then: '23 deg (0.40 rad) from its initial
    pose, its top toward -x'. Where the task turns the body (``turning``: a flip, rising from lying,
    ``TURNING_FITNESSES``) the axis is named, not called its top: the stand-up humanoid lies on its back with
    its torso's z axis out of its chest, and "its top toward +x" read as a roll onto its front."""
    deg = float(f["max_tilt_deg"])
    toward = f.get("max_tilt_toward")
    axis = "its z axis" if turning else "its top"
    return f"{deg:.0f} deg ({math.radians(deg):.2f} rad) from its initial pose" + (
        f", {axis} toward {toward}" if toward in ("+x", "-x", "+y", "-y") else "")


def turned_text(share: str, turning: bool = False) -> str:
    """``share`` (of an episode) spent turned more than 90 deg from the initial pose: "upside-down 40%",
    said as what it is where the task turns the body (``turning``: sitting up from lying turns the
    torso past 90 deg without putting it upside-down)."""
    return f"turned more than 90 deg for {share}" if turning else f"upside-down {share}"


def summarize_episode(traj: dict[str, Any], label: str = "") -> str:
    """A short factual text about one recorded episode (see the module docstring for definitions)."""
    f = episode_facts(traj)
    n, horizon, dt = f["length"], f["horizon"], float(traj["dt"])
    head = f"{label}: " if label else ""
    if n == 0:
        return f"{head}the episode has no steps."
    early = bool(f["terminated"] and n < horizon)
    rules = traj.get("termination") or []
    ended = "ran to the time limit"
    if early and f["ended_by"]:
        ended = "ended early by the env's termination rule: " + "; ".join(f["ended_by"])
    elif early:
        ended = ("ended early: the env's termination rule ended it" + (
            f" (an episode goes on only while {' and '.join(rules)})" if rules else " (its failure condition)"))
    lines = [f"{head}seed {f['seed']}, fitness {f['fitness']:.4g}; lasted {n} of {horizon} steps "
             f"({n * dt:.2f} s), {ended}."]
    b, tb = f["main_body"], f["tilt_body"]
    if f["height_max"] - f["height_min"] < 1e-3:
        lines.append(f"{b} height constant at {f['height_mean']:.3f} m.")
    else:
        lines.append(f"{b} height: start {f['height_start']:.3f} m, mean {f['height_mean']:.3f}, min "
                     f"{f['height_min']:.3f} (step {f['height_min_step']}), end {f['height_end']:.3f}; by quarter "
                     + ", ".join(f"{q:.3f}" for q in f["height_quarters"]) + ".")
    if not f.get("falls_matter", True):
        pass  # a flip or a rise (TURNING_FITNESSES): turning the body is the task, not a fall
    elif f["falls"]:
        lines.append(f"{tb} fell {f['falls']} time(s) (tilt > {FALL_TILT_DEG:.0f} deg or height below half its "
                     f"start), first at step {f['first_fall_step']}.")
    elif early:  # the env's rule is the fall that counts; say what the summary's own measure saw before it
        lines.append(f"{tb} did not tilt past {FALL_TILT_DEG:.0f} deg or drop below half its start height before "
                     "the env ended the episode.")
    else:
        lines.append(f"No falls of {tb}.")
    turning = not f.get("falls_matter", True)
    share = f"{100 * f['upside_down_fraction']:.0f}%"
    tilt = f"{tb} {turned_text(share, turning)} of the time, max tilt {tilt_text(f, turning)}"
    if f.get("most_tilted_body") and f["most_tilted_body"] != tb:
        tilt += f"; most tilted body from its initial pose: {f['most_tilted_body']} ({f['most_tilted_deg']:.0f} deg)"
    lines.append(tilt + ".")
    d = f["displacement"]
    lines.append(f"Centre of mass moved {d[0]:+.2f} m along x, {d[1]:+.2f} m along y (path {f['path_length']:.2f} m, "
                 f"mean x-speed {f['mean_speed_x']:+.3f} m/s).")
    if f.get("longest_stall"):
        a, z = f["longest_stall"]
        lines.append(f"Stalled (centre of mass < {100 * STALL_SPEED:.0f} cm/s over {STALL_SECONDS:g} s) "
                     f"{100 * f['stalled_fraction']:.0f}% of the time; longest stall steps {a}-{z}"
                     + (" (until the end)." if z == n else "."))
    elif "stalled_fraction" in f:
        lines.append("Never stalled.")
    return " ".join(lines)


def best_and_worst(task: Task, export: PolicyExport, evaluation: dict[str, Any] | None = None,
                   seed: int = 10_000, recorded: dict[int, dict] | None = None) -> dict[str, Any]:
    """Summaries of the best and the worst episode of an evaluation.

    ``evaluation`` is ``evaluate_policy``'s output for the same ``seed`` (episode i used seed + i);
    only its per-episode fitness is read, to pick the two episodes, which are then replayed. Without
    it every one of ``task.eval_episodes`` episodes is recorded. Returns ``{"best": {...}, "worst":
    {...}}`` each with ``episode``, ``seed``, ``fitness``, ``summary`` and ``facts``. ``recorded``:
    trajectories the evaluation already recorded (``evaluate_policy(record=True)``), not replayed.
    """
    if evaluation and evaluation.get("episodes"):
        fits = [float(e["fitness"]) for e in evaluation["episodes"]]
        picks = {"best": int(np.argmax(fits)), "worst": int(np.argmin(fits))}
        trajs = {i: (recorded or {}).get(i) or record_trajectory(task, export, seed + i) for i in set(picks.values())}
    else:
        trajs = {i: record_trajectory(task, export, seed + i) for i in range(task.eval_episodes)}
        fits = [trajs[i]["fitness_value"] for i in sorted(trajs)]
        picks = {"best": int(np.argmax(fits)), "worst": int(np.argmin(fits))}
    out = {}
    for label, i in picks.items():
        t = trajs[i]
        out[label] = {"episode": i, "seed": seed + i, "fitness": float(t["fitness_value"]),
                      "summary": summarize_episode(t, f"{label} episode"), "facts": _jsonable(episode_facts(t))}
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return x
