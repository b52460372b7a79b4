"""The argument parser: every command, option and help text (``rewardgen --help``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rewardgen.cli.commands import (
    cmd_bench,
    cmd_check,
    cmd_debug,
    cmd_describe,
    cmd_evolve,
    cmd_export,
    cmd_feedback,
    cmd_final,
    cmd_play,
    cmd_prefer,
    cmd_report,
    cmd_resume,
    cmd_serve,
    cmd_task_new,
    cmd_tasks,
    cmd_train,
)
from rewardgen.cli.common import (
    Parser,
    env_steps,
    non_negative_int,
    port_number,
    positive_float,
    positive_int,
)


def _add_env_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bring your own robot (no task file needed)")
    g.add_argument("--env", default=None, metavar="ROBOT.xml", help="an MJCF model file to use instead of --task")
    g.add_argument("--describe", default=None, help='what the robot should do, e.g. "make it walk forward"')
    g.add_argument("--fitness", default=None,
                   help='trusted fitness from rewardgen\'s library, e.g. "forward_velocity(body=base)"')
    g.add_argument("--episode-length", type=env_steps, default=None, help="steps per episode (default 1000)")
    g.add_argument("--success-threshold", type=float, default=None, help="fitness that counts as success")
    g.add_argument("--frame-skip", type=positive_int, default=None, help="physics steps per env step (default 5)")
    g.add_argument("--id", default=None, help="task id (default: derived from the file name)")


# --------------------------------------------------------------------------- parser
def _add_training_args(p: argparse.ArgumentParser, task_required: bool = True) -> None:
    p.add_argument("--task", required=task_required, help="task id (see `rewardgen tasks`) or path to a task YAML file")
    p.add_argument("--steps", type=env_steps, default=None,
                   help="training env-steps per candidate: 300000, 300_000, 300k, 1.5M or 1e6 (default: the task's)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--runs-dir", default="runs", help="where run directories are created (default ./runs)")
    p.add_argument("--workers", type=positive_int, default=None, help="candidates trained in parallel (default: CPU cores)")
    p.add_argument("--trainer", default="ppo", choices=["ppo", "sb3"],
                   help="RL trainer run in the worker: ppo (rewardgen's batched PPO, default) or sb3 "
                        "(stable-baselines3 PPO)")
    p.add_argument("--num-envs", type=positive_int, default=None,
                   help="simulated worlds per training batch (default: the trainer's own)")
    p.add_argument("--timeout", type=positive_float, default=None,
                   help="wall-clock seconds per candidate's training (default: derived from --steps)")
    p.add_argument("--eval-episodes", type=positive_int, default=None,
                   help="episodes of trusted evaluation (default: the task's)")
    p.add_argument("--sim", choices=["cpu", "warp"], default="cpu",
                   help="batched simulator for --trainer ppo: cpu (default) or warp (MuJoCo Warp, rewardgen[gpu])")
    p.add_argument("--device", default="cpu", help="training device: cpu (default), cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print a JSON object as the last line of stdout")


def version_text() -> str:
    """``rewardgen --version``: the package, Python, MuJoCo, and which OpenGL backend renders videos and why."""
    import platform

    import mujoco

    from rewardgen import __version__
    from rewardgen.glbackend import install

    return (f"rewardgen {__version__} (Python {platform.python_version()}, MuJoCo {mujoco.__version__}; "
            f"renderer: {install().describe()})")


class _Version(argparse.Action):
    """Prints ``version_text()`` as one unwrapped line (argparse's own version action rewraps it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rewardgen", description="Write, train and select reward functions for MuJoCo robots.",
                     epilog="Exit codes: 0 done; 1 the command ran but produced nothing usable (e.g. a run in which "
                            "no candidate trained, or the LLM endpoint failed: the cause is named in one line); "
                            "2 bad input (one line on stderr, nothing on disk changed).")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print rewardgen's version, MuJoCo's and the renderer in force, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("evolve", help="evolve reward functions for a task (propose, train, evaluate, reflect)",
                       description="Evolve reward functions: K candidates per generation, each trained in a sandboxed "
                                   "worker and judged by the task's trusted fitness. The offline proposer is used "
                                   "unless an LLM is configured.")
    _add_training_args(p, task_required=False)
    p.add_argument("--samples", type=positive_int, default=4, help="candidates per generation, K (default 4)")
    p.add_argument("--generations", type=positive_int, default=3, help="generations, G (default 3)")
    p.add_argument("--mode", choices=["code", "params"], default="code",
                   help="code (default): proposers write reward code; params: they fill weights and targets of a "
                        "reward template derived from the robot (Language-to-Rewards style)")
    _add_env_args(p)
    p.add_argument("--interactive", action="store_true",
                   help="pause after each generation for text feedback and a best/worst choice in the terminal "
                        "(or the web UI); Ctrl-C while waiting and `rewardgen resume` later")
    p.add_argument("--no-video", action="store_true", help="do not render rollout videos of the candidates")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (default): worker processes here; ray: each candidate a Ray task (rewardgen[ray])")
    p.add_argument("--ray-address", default=None, help="Ray cluster address for --executor ray (default: local)")
    p.add_argument("--schedule", choices=["halving", "adaptive", "full"], default="halving",
                   help="halving (default): train all candidates to a fifth of the budget, continue the best 3/8 "
                        "(trusted fitness) from their saved state to half, then the best third to the full budget; "
                        "adaptive: all train in small increments from their saved state, a candidate stops when the "
                        "trusted fitness shows it clearly behind or the generation's step budget (1 + 0.18 log2 K "
                        "budgets) cannot carry it, the last one trains the full budget (about half of halving's "
                        "env-steps; it picks as well as halving only where candidates separate early, as on "
                        "halfcheetah-run, not on hopper-hop: docs/benchmarks.md); full: every candidate gets it all")
    p.add_argument("--confirm-seeds", type=non_negative_int, default=0, metavar="N",
                   help="before naming the run's best, retrain the 3 candidates with the highest trusted fitness "
                        "from scratch on N new training seeds each and name the one with the highest mean: one "
                        "seed's fitness is partly luck where training outcomes spread (3 x N more full trainings; "
                        "default 0: the highest single-seed fitness)")
    llm = p.add_argument_group("proposer")
    llm.add_argument("--llm", choices=["auto", "openai", "offline"], default="auto",
                     help="auto (default): an LLM when OPENAI_API_KEY, OPENAI_BASE_URL or --base-url is set, "
                          "else the offline proposer; openai: any OpenAI-compatible endpoint (OpenAI's own needs "
                          "OPENAI_API_KEY); offline: no LLM. How rewardgen copes with each server: docs/llm.md")
    llm.add_argument("--model", default="gpt-4o-mini", help="LLM model name (default gpt-4o-mini)")
    llm.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                                                      "(vLLM, Ollama, llama.cpp server, LM Studio)")
    llm.add_argument("--temperature", type=float, default=1.0, help="LLM sampling temperature (default 1.0)")
    llm.add_argument("--llm-timeout", type=positive_float, default=120.0,
                     help="seconds per LLM request before it is retried (default 120)")
    llm.add_argument("--critic", choices=["sandbox", "llm"], default="sandbox",
                     help="sandbox (default): check code in the sandbox before training; llm: also an LLM review")
    llm.add_argument("--prompts", default=None, help="directory of Jinja2 templates overriding prompts/")
    llm.add_argument("--prompt-chars", type=positive_int, default=60_000, metavar="N",
                     help="most characters of an LLM request (about 4 per token; default 60000, for a 32k-token "
                          "context): older generations are compressed to fit, the newest never is")
    llm.add_argument("--replay", default=None, metavar="RUN_DIR",
                     help="re-run a past LLM run from its recorded answers, with no network")
    p.set_defaults(func=cmd_evolve)

    p = sub.add_parser("resume", help="continue an interrupted run, or add generations to a finished one",
                       description="Continue a run from its run directory (after a crash, Ctrl-C or kill -9) without "
                                   "retraining finished candidates; with --generations N, plan N generations in all "
                                   "and train the ones the run lacks (a finished run goes on from its last "
                                   "generation, its feedback and best included).")
    p.add_argument("run", help="the run directory, e.g. runs/20261123-120000-halfcheetah-run")
    p.add_argument("--generations", type=positive_int, default=None, metavar="N",
                   help="the run's new TOTAL of generations, counted like evolve --generations (a run of 3 "
                        "finished generations given --generations 5 trains 2 more); default: the run's own")
    p.add_argument("--json", action="store_true", help="print a JSON object as the last line of stdout")
    reach = p.add_argument_group("where it may connect (a run directory never chooses this for you: docs/sandbox.md)")
    reach.add_argument("--base-url", default=None,
                       help="the OpenAI-compatible endpoint to continue an LLM run with (default: OPENAI_BASE_URL, "
                            "else OpenAI's API); a run made with another endpoint is refused unless you pass this "
                            "or --use-run-endpoint")
    reach.add_argument("--use-run-endpoint", action="store_true",
                       help="send requests (and OPENAI_API_KEY) to the endpoint the run recorded: only for runs you trust")
    reach.add_argument("--model", default=None, help="LLM model name (default: the run's)")
    reach.add_argument("--prompts", default=None, help="prompt templates to continue with (needed when the run was "
                                                       "made with its own: templates are code)")
    reach.add_argument("--ray-address", default=None, help="the Ray cluster to continue on (needed when the run "
                                                           "named one)")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("train", help="train one reward file and report its trusted fitness",
                       description="Train one reward file (the reward contract: compute_reward(s) -> (total, dict)) "
                                   "in a sandboxed worker and report its trusted fitness.")
    p.add_argument("reward", help="path to a reward .py file")
    _add_training_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("check", help="check a reward file: static checks, then a short sandboxed run",
                       description="Check a reward file the way evolve does before training: static validation, "
                                   "then a short run in the sandbox. Exit 0 accepted, 1 rejected, 2 usage error.")
    p.add_argument("reward", help="path to a reward .py file")
    p.add_argument("--task", required=True, help="task id or path to a task YAML file")
    p.add_argument("--steps", type=env_steps, default=256, help="env-steps of the smoke run (default 256)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--timeout", type=positive_float, default=None,
                   help="wall-clock seconds the sandboxed run may take before it is killed (default 60, as "
                        "evolve's check)")
    p.add_argument("--json", action="store_true",
                   help='print {"ok", "stage", "error", "components"} as the last line of stdout')
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="benchmarks: throughput, learning, schedule (adaptive, halving, full training), "
                       "evolve (evolve's speed against its trainer's), export (the exported reward's step cost)",
                       description="throughput: raw batched simulation vs rewardgen PPO vs SB3 PPO, side by side. "
                                   "learning: median trusted fitness of rewardgen PPO and SB3 PPO at equal steps. "
                                   "schedule: the same candidates under --schedule full, halving and adaptive: "
                                   "env-steps spent (share of full's), best trusted fitness and its gap to full's "
                                   "best, per seed and median. "
                                   "evolve: in one run, interleaved, the trainer alone with every core vs evolve "
                                   "generations (K candidates x --steps, full schedule with and without video; "
                                   "halving at the task's budget): env-steps/s, efficiency (evolve / trainer "
                                   "alone) and per-candidate fixed overhead, medians over --repeats. "
                                   "export: the exported reward file's cost per env step against the raw env's, side by "
                                   "side (its plain wrapper, the State it builds and the reward's own calls apart, the "
                                   "sandboxed wrapper, and the vectorised forms; docs/benchmarks.md). "
                                   "suite: per task, evolve with the offline proposer at the task's budget, then "
                                   "final (evolved, human and sparse rewards, --seeds seeds each); a table of the "
                                   "fitnesses, human-normalised scores, success and the share of tasks where "
                                   "evolved >= human (docs/benchmarks.md); resumable.")
    p.add_argument("what", choices=["throughput", "learning", "schedule", "evolve", "suite", "export"],
                   help="which benchmark")
    p.add_argument("--task", default=None, help="task id (default halfcheetah-run; throughput: every env's task, "
                   "see --tasks)")
    p.add_argument("--steps", type=env_steps, default=None,
                   help="throughput: env-steps of each b training (default 200000); learning: env-steps per run; "
                        "evolve: per candidate of the full-schedule rows (default 300000); "
                        "schedule: the full budget per candidate (default: the task's; same as --schedule-steps); "
                        "suite: every task's budget instead of its own (quick runs)")
    p.add_argument("--seeds", type=positive_int, default=None, help="learning: number of seeds, 0..N-1 (default 3; PPO's "
                   "seed-to-seed spread on HalfCheetah is wide, 10 tell the medians apart far better); schedule: "
                   "number of run seeds, --seed..--seed+N-1, each with its own proposals (default 1; rows per seed "
                   "and medians); suite: final training seeds per method (default 3)")
    p.add_argument("--samples", type=positive_int, default=None, help="schedule: candidates (default 8); evolve: "
                   "candidates per generation (default 4); suite: candidates per generation (default 4)")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help="throughput, evolve: repeats, interleaved, medians reported (default 3)")
    p.add_argument("--sb3-steps", type=env_steps, default=16_384,
                   help="throughput: env-steps of each SB3 PPO training, c (default 16384; it is a rate)")
    p.add_argument("--sim-seconds", type=positive_float, default=5.0,
                   help="throughput: seconds of each raw simulation, a (default 5)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="evolve: candidates trained at once (default 1: nothing hides the per-candidate overhead); "
                        "suite: trainings at once (default: CPU cores)")
    p.add_argument("--halving-steps", type=env_steps, default=None,
                   help="evolve: budget per candidate of the halving row (default: the task's)")
    p.add_argument("--quick", action="store_true", help="evolve: a tiny run (4096 env-steps, 2 candidates, 1 repeat, "
                   "1 evaluation episode) that checks the benchmark works, not the machine")
    p.add_argument("--schedule-steps", type=env_steps, default=None,
                   help="schedule: full budget per candidate (default: the task's; --steps says the same)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="schedule: where the runs are kept (default: a new temporary directory); rerun with the same "
                        "directory to reuse or continue each schedule's run and judge training made before")
    p.add_argument("--schedules", default=None,
                   help="schedule: which schedules, comma-separated (default full,halving,adaptive; the shares and "
                        "gaps need full)")
    p.add_argument("--trainer", choices=["ppo", "sb3"], default="ppo", help="schedule: trainer (default ppo)")
    p.add_argument("--judge-seeds", type=non_negative_int, default=0, metavar="N",
                   help="schedule: also retrain every candidate's reward from scratch on N new training seeds and "
                        "judge each schedule's pick by its reward's mean fitness over them, as `rewardgen final` "
                        "would (costs N full trainings per candidate; default 0: off)")
    p.add_argument("--tasks", default=None, metavar="T,T,...",
                   help="throughput: 'all' (the default: one task per gymnasium env) or comma-separated task ids; "
                        "suite: comma-separated task ids, each optionally with its own budget (ant-run=300000; "
                        "default: every task whose baseline is the env's own reward, as `rewardgen tasks` "
                        "lists them, cheapest budget first)")
    p.add_argument("--out", default="runs/suite", help="suite: directory of its runs, state and table; rerun with "
                   "the same --out to continue an interrupted suite (default runs/suite)")
    p.add_argument("--generations", type=positive_int, default=3, help="suite: generations per evolve (default 3)")
    p.add_argument("--confirm-seeds", type=non_negative_int, default=0, metavar="N",
                   help="suite: each evolve names its best after retraining its 3 best candidates on N new seeds "
                        "(evolve --confirm-seeds; default 0)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="schedule, evolve: run seed; candidates' training seeds derive from it (default 0)")
    p.add_argument("--reward", default=None, metavar="FILE",
                   help="export: the reward to export (default: the offline proposer's canonical reward for the task)")
    p.add_argument("--envs", type=positive_int, default=8, help="export: envs of the vectorised forms (default 8)")
    p.add_argument("--sim", choices=["cpu", "warp"], default="cpu", help="throughput: simulator (default cpu)")
    p.add_argument("--device", default="cpu", help="throughput with --sim warp: device, e.g. cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line of stdout")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("debug", help="why does this reward not work? per-component statistics and flags",
                       description="Run a reward (sandboxed) on rollouts of a random policy and, with --policy, a "
                                   "trained one; report per-component statistics and flag dominant, constant, "
                                   "wrong-sign, growing, mis-scaled or fitness-opposed terms.")
    p.add_argument("reward", help="path to a reward .py file")
    p.add_argument("--task", required=True, help="task id or path to a task YAML file")
    p.add_argument("--policy", default=None, help="a trained policy.npz (e.g. runs/<id>/gen-000/cand-00/policy.npz)")
    p.add_argument("--episodes", type=positive_int, default=5, help="episodes per policy (default 5)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_debug)

    p = sub.add_parser("report", help="write a self-contained HTML report of a run",
                       description="Write a self-contained HTML report (plots, code, lineage, hacking flags).")
    p.add_argument("run", help="the run directory")
    p.add_argument("-o", "--output", default=None, help="output file (default RUN/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export a reward (standalone file with a gymnasium wrapper) or, with --policy, "
                                      "the trained policy as a torch module",
                       description="Write compute_reward plus a gymnasium.Wrapper applying it to the task's env, "
                                   "usable from stable-baselines3 or any gymnasium trainer without rewardgen. With "
                                   "--policy, write the candidate's trained policy to a folder instead: policy.pt "
                                   "(weights and facts, read with torch.load(weights_only=True)), policy.py (a short "
                                   "loader that needs only torch: policy.load('policy.pt') gives a torch module "
                                   "mapping observations to the env's own actions, as rewardgen's evaluator acts) "
                                   "and policy.onnx when the onnx package is installed (rewardgen[onnx]).")
    p.add_argument("run", help="the run directory")
    p.add_argument("--candidate", default=None, metavar="gGcC",
                   help="which candidate, by its label, e.g. g1c0 (generation 1, candidate 0; 1/0 works too; "
                        "default: the run's best)")
    p.add_argument("-o", "--output", required=True, help="output .py file; with --policy, a new (or empty) folder")
    p.add_argument("--policy", action="store_true",
                   help="export the trained policy (policy.pt, policy.py, policy.onnx) instead of the reward")
    p.add_argument("--force", action="store_true", help="overwrite the output file (with --policy: the policy files "
                   "in a folder that is not empty)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("play", help="watch a trained policy: a video of one rollout, and a window when a display exists",
                       description="Render one rollout of a candidate's trained policy to an mp4 (headless: MuJoCo's "
                                   "offscreen renderer) and, when a display exists, show it in MuJoCo's viewer "
                                   "window in real time. The rollout is the trusted evaluation's first episode "
                                   "unless --seed says otherwise.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--candidate", default=None, metavar="g1c3",
                   help="which candidate: g1c3 (generation 1, candidate 3) or 1/3 (default: the run's best)")
    p.add_argument("-o", "--output", default=None, metavar="VIDEO.mp4",
                   help="the video to write (default ./<run id>-<candidate>.mp4)")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help="the episode's reset seed (default: the run's first evaluation episode)")
    p.add_argument("--seconds", type=positive_float, default=10.0,
                   help="simulated seconds to show at most; the episode may end earlier (default 10)")
    p.add_argument("--window", action=argparse.BooleanOptionalAction, default=None,
                   help="show the rollout in a window too (default: when DISPLAY or WAYLAND_DISPLAY is set)")
    p.add_argument("--force", action="store_true", help="overwrite the video file if it exists")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("final", help="final evaluation: retrain the best reward with several seeds vs baselines",
                       description="Retrain the run's best reward with several seeds, and the env's own (human) "
                                   "reward and a sparse success reward at the same budget; report trusted fitness "
                                   "and the human-normalised score (method - sparse) / |human - sparse|.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--seeds", type=positive_int, default=5, help="training seeds per method (default 5)")
    p.add_argument("--steps", type=env_steps, default=None, help="env-steps per training (default: the run's)")
    p.add_argument("--episodes", type=positive_int, default=None, help="evaluation episodes per policy")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="where training runs")
    p.add_argument("--ray-address", default=None, help="Ray cluster address for --executor ray")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line of stdout")
    p.set_defaults(func=cmd_final)

    p = sub.add_parser("feedback", help="give text feedback on a run (used by its next generation)",
                       description="Store text feedback for a run, optionally about one candidate; the next "
                                   "generation's proposer uses it.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--text", required=True, help="what you saw and what you want instead")
    p.add_argument("--candidate", default=None, metavar="gGcC",
                   help="the candidate it is about, by its label, e.g. g0c2 (0/2 works too)")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("prefer", help="say which candidates of a generation you prefer (ICPL-style)",
                       description="Store a preference between the candidates of a finished generation; the "
                                   "preferred one becomes the next generation's parent.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--generation", type=non_negative_int, required=True, help="the generation")
    p.add_argument("--best", type=non_negative_int, default=None, help="the candidate you like most")
    p.add_argument("--worst", type=non_negative_int, default=None, help="the candidate you like least")
    p.add_argument("--ranking", default=None, metavar="C,C,...", help="a full ranking, best first")
    p.set_defaults(func=cmd_prefer)

    p = sub.add_parser("serve", help="web UI: watch candidates' videos, give feedback, start the next generation",
                       description="Serve the web UI over a runs directory (127.0.0.1 by default; any other host "
                                   "needs --token).")
    p.add_argument("--runs-dir", default="runs", help="the runs directory (default ./runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port, 1-65535 (default 8000)")
    p.add_argument("--token", default=None, help="access token, required when binding beyond loopback")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("task", help="task files: `rewardgen task new` writes one for your own robot",
                       description="Manage task files.")
    task_sub = p.add_subparsers(dest="task_command", metavar="SUBCOMMAND", parser_class=Parser)
    task_sub.required = True
    q = task_sub.add_parser("new", help="write a task YAML for an MJCF robot",
                            description="Write a task file for an MJCF model (keep it, edit it, pass it to --task).")
    _add_env_args(q)
    q.add_argument("-o", "--output", required=True, help="the YAML file to write")
    q.add_argument("--steps", type=env_steps, default=None, help="default training steps")
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q.set_defaults(func=cmd_task_new)

    p = sub.add_parser("tasks", help="list the available tasks", description="List the tasks in environments/.")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("describe", help="print exactly what a proposer sees for a task",
                       description="Print the system and task prompts (derived robot schema + task) for a task.")
    p.add_argument("task", help="task id or path to a task YAML file")
    p.add_argument("--json", action="store_true", help="print the prompts as JSON")
    p.set_defaults(func=cmd_describe)
    return parser
