"""What decides a candidate's fitness and its training, stated from the code that enforces it.

A proposer that guesses the rules writes rewards for another task. The task prompt says exactly how
the trusted fitness measures an episode (its per-step measure as an expression over the State ``s``
a reward reads, how an episode's values become one number, how an episode that ends early counts,
and which way a rotation turns, in the robot's own joints), when the simulator ends an episode
(``rewardgen.sim.termination.termination_of``), and how the run trains and compares candidates
(``TrainingPlan``, built by ``rewardgen.run`` from the trainer's and the schedule's own settings).
Tests check these lines against the simulator and the fitness functions for every task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from rewardgen.contract.state import StateBuffers
from rewardgen.sim.termination import Termination, env_reward_text, termination_of
from rewardgen.tasks.fitness import Fitness, make_fitness
from rewardgen.tasks.spec import Task


@dataclass(frozen=True)
class TrainingPlan:
    """How a run trains and compares its candidates, as a proposer is told it.

    :param steps: env-steps of one full training (one env-step: one step of one world).
    :param samples: candidates per generation (K).
    :param worlds: worlds simulated in parallel while training.
    :param trainer_lines: the trainer's settings in sentences (from the trainer's own code).
    :param schedule: ``halving``, ``adaptive`` or ``full``.
    :param schedule_lines: when candidates are evaluated, compared and cut (from the schedule's code).
    :param eval_episodes: trusted evaluation episodes behind each fitness.
    :param training_seeds: training seeds behind each fitness (evolve trains each candidate once).
    :param observation_size: length of the observation vector the policy sees.
    :param generations: generations the run plans in all (None: not told).
    :param confirm_seeds: new training seeds each of the run's top candidates is retrained on after
        the last generation before the best is named (0: the best is named from its one seed).
    :param confirm_top: how many of the run's top candidates that confirmation retrains.
    """

    steps: int
    samples: int
    worlds: int
    trainer_lines: list[str] = field(default_factory=list)
    schedule: str = "full"
    schedule_lines: list[str] = field(default_factory=list)
    eval_episodes: int = 1
    training_seeds: int = 1
    observation_size: int | None = None
    generations: int | None = None
    confirm_seeds: int = 0
    confirm_top: int = 0


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() and abs(x) >= 1000 else f"{x:g}"


# ----- which way a rotation turns, in the robot's own joints
def hinge_rates(task: Task, body: str, axis: int) -> list[tuple[str, float]]:
    """Hinge joints whose velocity alone turns ``body`` about world ``axis``, with the sign: a joint
    velocity of +1 rad/s gives ``s.body_angvel[body][:, axis]`` of about +1 or -1 (measured through the
    State, in the initial pose). Only joints that turn the body about that axis and no other count."""
    model = task.model
    schema = task.schema
    out: list[tuple[str, float]] = []
    for name, dof in zip(schema.joints, schema.joint_dof_adr):
        j = schema.joint_ids[schema.joints.index(name)]
        if int(model.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_HINGE):
            continue
        data = mujoco.MjData(model)
        data.qvel[dof] = 1.0
        mujoco.mj_forward(model, data)
        buffers = StateBuffers(schema, model, 1)
        buffers.fill(0, data, np.zeros(model.nu, dtype=np.float32), 0)
        w = buffers.body_angvel[0, schema.body_index(body)].astype(float)
        if abs(abs(w[axis]) - 1.0) < 1e-3 and np.abs(np.delete(w, axis)).max() < 1e-3:
            out.append((name, float(np.sign(w[axis]))))
    return out


def _rotation_sense(task: Task, fitness: Fitness) -> str:
    params = fitness.params
    body, axis_name = str(params["body"]), params.get("axis", "y")  # make_fitness checked the body name
    axis = "xyz".index(axis_name)
    sign = -1.0 if float(params.get("sign", 1)) < 0 else 1.0
    field_expr = f's.body_angvel["{body}"][:, {axis}]'
    if axis == 1:
        what = ("backward (the front, at +x, goes up and over the top toward -x)" if sign < 0
                else "forward (the front, at +x, goes down and under toward -x)")
    else:
        what = f"about {'+' if sign > 0 else '-'}{axis_name} (right-hand rule)"
    line = (f"Turning {what} is a {'negative' if sign < 0 else 'positive'} angular velocity about world "
            f"+{axis_name}: {field_expr} {'<' if sign < 0 else '>'} 0")
    joints = hinge_rates(task, body, axis)
    if joints:
        name, rate = joints[0]
        rising = (sign * rate) > 0
        line += (f", which is s.joint_vel[\"{name}\"] {'>' if rising else '<'} 0 (joint {name} "
                 f"{'increasing' if rising else 'decreasing'}: one full turn the scored way changes it by "
                 f"{'+' if rising else '-'}2*pi)")
    return line + "."


def _circle_sense(fitness: Fitness) -> str:
    sense = "counterclockwise" if float(fitness.params.get("sign", 1)) > 0 else "clockwise"
    return (f"{sense.capitalize()} is as seen from above (looking down -z): "
            + ("turning from +x toward +y." if sense == "counterclockwise" else "turning from +x toward -y."))


def fitness_lines(task: Task, termination: Termination | None = None) -> list[str]:
    """Sentences saying exactly what the trusted fitness measures and how an episode counts."""
    fitness = make_fitness(task.fitness, task.schema)
    termination = termination or termination_of(task)
    horizon = int(task.episode_length)
    unit = f" ({fitness.unit})" if fitness.unit else ""
    lines = [f"It measures {fitness.doc}.",
             f"Per step it reads `{fitness.expr}`{unit} from the same State `s` your reward gets."]
    early = termination.ends_early
    if fitness.aggregate == "horizon":
        how = (f"An episode's fitness is the sum of the per-step values divided by {horizon} (the time limit in "
               "steps, not the steps lived): the mean over the whole horizon.")
        if early:
            example = ""
            if fitness.name == "forward_velocity":
                example = (f" For example a policy moving at 2 m/s that falls at step {horizon // 5} scores at most "
                           f"{2 * (horizon // 5) / horizon:.2g}.")
            how += f" An episode that ends early counts 0 for every step it did not live.{example}"
    elif fitness.aggregate == "total":
        how = "An episode's fitness is the sum of the per-step values over the steps lived (turning back subtracts)."
        if early:
            how += " An episode that ends early keeps what it achieved before it ended."
    elif fitness.aggregate == "max":
        how = "An episode's fitness is the largest per-step value of the episode."
        if early:
            how += " An episode that ends early keeps the largest value it reached before it ended."
    else:
        how = f"An episode's fitness is the mean of the per-step values over the last {fitness.tail} steps of the episode."
        if early:
            how += f" An episode that ends early is judged on its last {fitness.tail} steps before it ended."
    if not early:
        how += " (Episodes of this task always run to the time limit.)"
    lines.append(how)
    if fitness.name == "rotation":
        lines.append(_rotation_sense(task, fitness))
    elif fitness.name == "circle_laps":
        lines.append(_circle_sense(fitness))
    elif fitness.name == "forward_velocity" and float(fitness.params.get("sign", 1)) < 0:
        axis = fitness.params.get("axis", "x")
        lines.append(f"The sign is flipped: moving toward -{axis} scores positive, moving toward +{axis} negative.")
    return lines


def termination_lines(termination: Termination) -> list[str]:
    """``Termination.describe()`` plus what follows for a reward (true for PPO with these rules)."""
    lines = termination.describe()
    if termination.ends_early:
        lines.append("So here a positive per-step term (even a constant one, like an alive bonus) pays for living "
                     "longer: it works through episode length, not through its own variation. A reward whose "
                     "per-step total is mostly negative teaches the policy to end episodes early.")
    else:
        lines.append("So here a constant per-step term changes nothing the policy can choose (every episode lasts "
                     "the same): it carries no signal.")
    return lines


def plan_lines(plan: TrainingPlan, task: Task) -> list[str]:
    """Sentences on the training budget, the trainer and the schedule."""
    per_world = plan.steps / max(plan.worlds, 1)
    lines = [f"Each candidate trains for {_num(plan.steps)} env-steps (one env-step is one step of one world): "
             f"{plan.worlds} worlds in parallel, about {_num(round(per_world))} steps per world, "
             f"{per_world / task.episode_length:.2g} times the {task.episode_length}-step time limit. Every "
             "candidate trains from scratch: nothing but its code comes from its parent."]
    lines += plan.trainer_lines
    if plan.observation_size:
        lines.append(f"The policy observes the env's own observation vector ({plan.observation_size} numbers, "
                     "normalised), not `s`; `s.action` is what it outputs.")
    lines.append("rewardgen adds nothing to the reward you write: it is the whole training reward (no alive bonus, "
                 "control cost or termination penalty of its own), and the env's own reward is not used.")
    return lines


def judging_lines(plan: TrainingPlan | None, task: Task) -> list[str]:
    """How many episodes and seeds stand behind each fitness, and the success threshold."""
    episodes = plan.eval_episodes if plan else task.eval_episodes
    seeds = plan.training_seeds if plan else 1
    seed_text = ("one training seed (the reward is trained once): the same reward retrained on another seed can "
                 "score quite differently, so small differences between candidates are noise"
                 if seeds == 1 else f"{seeds} training seeds")
    return [f"A candidate's fitness is the mean over {episodes} evaluation episode{'s' if episodes != 1 else ''} of its "
            f"trained policy, run with its mean action (no exploration noise) from new random starts; it comes from "
            f"{seed_text}. Each candidate trains on a training seed of its own, and every candidate's policy is "
            f"evaluated from the same random starts. Success means at least {task.success_threshold:g}.",
            "Training episodes (reported later as tables) are of the exploring policy, which samples its actions "
            "around the mean action; the trusted fitness runs the mean action alone. The two can behave very "
            "differently: a policy that runs while exploring can stand still with its mean action, or the reverse.",
            *reference_lines(plan, task)]


#: two rewards each trained once differ by about sqrt(2) times one reward's spread over seeds
TWO_DRAWS = 1.4


@dataclass(frozen=True)
class SeedLuck:
    """How far the training seed alone moves fitness on a task: ``spread``, the widest standard deviation
    over seeds the task file's ``reference`` measured at ``steps``; ``gap``, how far two candidates each
    trained on one seed may differ by luck (``TWO_DRAWS`` times it)."""

    spread: float
    steps: int

    @property
    def gap(self) -> float:
        return TWO_DRAWS * self.spread

    def covers(self, steps: int) -> bool:
        """Whether a comparison at ``steps`` env-steps is at the budget the spread was measured at
        (within a tenth: a run's last rung lands near its budget, not on it)."""
        return abs(steps - self.steps) <= 0.1 * self.steps


def seed_luck(task: Task | None) -> SeedLuck | None:
    """The task's ``SeedLuck`` (None: no task, or no reference measured for it)."""
    ref = task.reference if task is not None else None
    if not ref:
        return None
    return SeedLuck(max(std for _, std in ref["rewards"].values()), int(ref["steps"]))


def reference_lines(plan: TrainingPlan | None, task: Task) -> list[str]:
    """What rewardgen measured on this task before (the task file's ``reference``): a scale for the
    fitness, and the training seed's noise, which one run's single-seed fitnesses cannot show."""
    from rewardgen.tasks.fitness import make_fitness
    from rewardgen.tasks.spec import REFERENCE_REWARDS

    luck = seed_luck(task)
    if luck is None:
        return []
    ref = task.reference
    formula = env_reward_text(task) if "env" in ref["rewards"] else None
    owner = f"{task.env_id}'s, per step: " if task.env_id else "per step: "
    env_name = (f"the env's own reward ({owner}{formula})" if formula
                else f"the env's own reward ({task.env_id}'s)" if task.env_id else "the env's reward")
    names = dict(REFERENCE_REWARDS, env=env_name)
    if "sparse" in ref["rewards"]:
        fitness = make_fitness(task.fitness, task.schema)
        pace = fitness.step_threshold(task.success_threshold, task.episode_length)
        names["sparse"] = f"the sparse success reward (1 on each step where {fitness.expr} >= {pace:.3g}, else 0)"
    rewards = "; ".join(f"{names[k]} {mean:.3g} ± {std:.2g}" for k, (mean, std) in ref["rewards"].items())
    budget = f"{ref['steps']:,} env-steps"
    if plan is not None and plan.steps != ref["steps"]:
        budget += f" (this run trains to {plan.steps:,})"
    return [f"For scale, rewardgen measured this task before at {budget}, retraining each reward from scratch on "
            f"{ref['seeds']} training seeds (mean ± standard deviation over the seeds; {ref['measured']}): "
            f"{rewards}.",
            f"The ± is how far one reward's fitness moves with the training seed alone, and it depends on the "
            f"reward: the widest here, ±{luck.spread:.2g}, is what to expect of a reward that finds the behaviour on "
            f"some seeds and not on others. Two candidates each trained once differ by the luck of two draws, "
            f"about {TWO_DRAWS} times that (about {luck.gap:.2g} here), so a smaller gap between them is weak evidence "
            f"at best. It was measured at the full budget; the seed's spread at earlier rungs has not been."]


# ----- the robot at reset: initial joint values, which way the root's hinges lean, frames
def _lean(task: Task, model: mujoco.MjModel, joint: int, body: int) -> str | None:
    """Which way a positive value of root hinge ``joint`` turns ``body``, from the model itself: the
    body's z axis (or, about a vertical axis, its x axis) at qpos0 and after +0.1 rad."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    before = data.xmat[body].reshape(3, 3).copy()
    data.qpos[model.jnt_qposadr[joint]] += 0.1
    mujoco.mj_kinematics(model, data)
    after = data.xmat[body].reshape(3, 3)
    axis = data.xaxis[joint]
    k = int(np.argmax(np.abs(axis)))
    if abs(abs(axis[k]) - 1.0) > 1e-6:
        return None  # not about a world axis: no short sentence is true
    about = f"{'+' if axis[k] > 0 else '-'}{'xyz'[k]}"
    col = 0 if k == 2 else 2  # the body's x axis for a yaw, its z axis for a pitch or roll
    moved = after[:, col] - before[:, col]
    m = int(np.argmax(np.abs(moved)))
    toward = f"{'+' if moved[m] > 0 else '-'}{'xyz'[m]}"
    which = "front (its local +x)" if col == 0 else "top (its local +z)"
    return f"it turns the body about world {about}: a positive value turns its {which} toward world {toward}"


def pose_lines(task: Task) -> list[str]:
    """The robot's initial pose as a reward reads it (``qpos0``, the State at reset before reset noise):
    the root joints' values with what they mean, the sign of each root hinge, that body positions are
    world positions, the other joints' starting values, and the reset noise (from the env's rules)."""
    from rewardgen.sim.rules import rules_for
    from rewardgen.sim.rules.base import EnvRules

    model, schema = task.model, task.schema
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    root = schema.robot_root
    root_name = schema.robot_root_name
    lines = []
    root_joints: list[tuple[str, int, int]] = []
    others: list[tuple[str, int, int]] = []
    for name, j, adr in zip(schema.joints, schema.joint_ids, schema.joint_qpos_adr):
        (root_joints if int(model.jnt_bodyid[j]) == root else others).append((name, j, int(adr)))
    pos = data.xpos[root]
    lines.append(f"s.body_pos, s.site_pos and s.com_pos are world positions (not relative to a parent body); at the "
                 f"initial pose {root_name} is at ({pos[0]:.3g}, {pos[1]:.3g}, {pos[2]:.3g}).")
    for name, j, adr in root_joints:
        kind = int(model.jnt_type[j])
        value = float(model.qpos0[adr])
        if kind == int(mujoco.mjtJoint.mjJNT_SLIDE):
            axis = data.xaxis[j]
            k = int(np.argmax(np.abs(axis)))
            world = float(pos[k])
            if abs(abs(axis[k]) - 1.0) < 1e-6 and abs(value * axis[k] - world) < 1e-6:
                reads = f"it reads {root_name}'s world {'xyz'[k]} itself"
            elif abs(abs(axis[k]) - 1.0) < 1e-6:
                reads = (f"it reads {root_name}'s world {'xyz'[k]} minus {world - value * axis[k]:.3g}: the change "
                         f"from the initial pose, not the {'height' if k == 2 else 'position'} itself")
            else:
                reads = "a slide along a tilted axis"
            lines.append(f's.joint_pos["{name}"] (slide) starts at {value:.3g} m; {reads}.')
        elif kind == int(mujoco.mjtJoint.mjJNT_HINGE):
            lean = _lean(task, model, j, root)
            lines.append(f's.joint_pos["{name}"] (hinge of {root_name}) starts at {value:.3g} rad'
                         + (f"; {lean}" if lean else "") + ".")
    nonzero = [f'{n} {float(model.qpos0[a]):.3g}' for n, _, a in others if abs(float(model.qpos0[a])) > 1e-9]
    if others:
        lines.append("The other joints start at " + ("0" if not nonzero else
                                                      "0 except " + ", ".join(nonzero)) + " (s.joint_pos).")
    env = task.make_env()
    try:
        rules = rules_for(env)
    except ValueError:
        rules = None
    finally:
        env.close()
    if rules is not None and type(rules).reset is EnvRules.reset and rules.noise > 0:
        lines.append(f"Each reset adds uniform noise of up to +-{rules.noise:g} to every entry of s.qpos and s.qvel "
                     "(all velocities start near 0).")
    elif rules is not None:
        lines.append("Each reset adds the env's own random noise to these values.")
    return lines


__all__ = ["TrainingPlan", "fitness_lines", "hinge_rates", "judging_lines", "plan_lines", "pose_lines",
           "termination_lines"]
