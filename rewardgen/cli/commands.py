"""The commands: each turns parsed arguments into one library call and shows its result."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from rewardgen.cli.common import (
    EXIT_FAILED,
    UsageError,
    config_from_args,
    consoles,
    emit_json,
    read_reward,
    refuse_with_replay,
    resume_command,
    task_from_env_args,
    task_named,
    task_with_overrides,
    writable_output,
)
from rewardgen.cli.display import (
    RichProgress,
    SuiteProgress,
    components_table,
    final_table,
    human_steps,
    suite_table,
    summary_table,
    tasks_text,
    throughput_table_view,
)
from rewardgen.errors import UserError, flatten
from rewardgen.loadavg import load_text
from rewardgen.safetext import term
from rewardgen.store import REPORT_FILE, REWARD_FILE, RunStore, candidate_label


def cmd_tasks(args) -> int:
    from rich.console import Console

    from rewardgen.tasks.spec import list_tasks

    tasks = list_tasks()
    if args.json:
        emit_json([{"id": t.id, "description": t.description, "robot": t.robot_label, "baseline": t.baseline_kind,
                     "fitness": t.fitness, "success_threshold": t.success_threshold,
                     "default_steps": t.default_steps} for t in tasks])
        return 0
    console = Console(highlight=False, soft_wrap=True)
    ids = {t.id for t in tasks}
    for line in tasks_text(tasks, min(console.width, 100)):
        head = line.split("  ·  ", 1)
        if len(head) == 2 and head[0] in ids:  # the task id in colour on a terminal
            console.print(f"[bold cyan]{term(head[0])}[/]  ·  {term(head[1])}")
        else:
            console.print(term(line))
    return 0


def cmd_describe(args) -> int:
    from rewardgen.proposers.prompts import task_prompts
    from rewardgen.run.config import EvolveConfig, effective_trainer
    from rewardgen.run.step import training_setup

    task = task_named(args.task)
    config = EvolveConfig(task=task.id)  # evolve's defaults: the budget and schedule a plain run gets
    setup = training_setup(task, config, effective_trainer(task, config.trainer)[0], config.budget(task))
    prompts = task_prompts(task, plan=setup.plan(config.samples, config.schedule, config.eval_episodes))
    if args.json:
        emit_json({"task": task.id, "system": prompts["system"], "user": prompts["task"]})
        return 0
    sys.stdout.write("=== system prompt ===\n" + prompts["system"] + "\n=== task prompt ===\n" + prompts["task"])
    return 0


def cmd_task_new(args) -> int:
    from rewardgen.tasks.spec import write_task_yaml

    task = task_from_env_args(args)
    path = write_task_yaml(task, Path(args.output), overwrite=args.force)
    print(f"wrote {path}; use it with: rewardgen evolve --task {path}")
    return 0


def _run_with_progress(args, fn) -> dict:
    console = consoles(args.json)
    with RichProgress(console) as progress:
        summary = fn(progress)
    return summary


def cmd_evolve(args) -> int:
    from rewardgen.run.evolve import Evolution, replay_config, start_run

    task = None
    notes: list[str] = []
    if args.replay:
        from rewardgen.run.config import UserReach

        refuse_with_replay(args)
        config, task = replay_config(Path(args.replay), UserReach(base_url=args.base_url, prompts=args.prompts,
                                                                  ray_address=args.ray_address))
    elif args.env:
        if args.task:
            raise UsageError("give either --task or --env, not both", prog="rewardgen evolve")
        task = task_from_env_args(args)
        args.task = task.id
        config = config_from_args(args)
    elif not args.task:
        raise UsageError("the following arguments are required: --task (or --env ROBOT.xml, or --replay RUN_DIR)",
                         prog="rewardgen evolve")
    else:
        config = config_from_args(args)
        config.validate()
        task, notes = task_with_overrides(task_named(config.task), args)
    config.validate()
    task = task or task_named(config.task)
    for note in notes:  # the task as this run changes it: said before anything runs
        consoles(args.json).print(f"{term(task.id)}: {term(note)}", highlight=False, soft_wrap=True)
    store = start_run(config, Path(args.runs_dir), task=task)
    return _run_or_stop(args, lambda progress: Evolution(store, progress).run(), store.path)


def _run_or_stop(args, fn, run_dir: Path) -> int:
    """Run an evolve/resume with progress; a run the LLM endpoint stopped ends in one line, exit 1."""
    from rewardgen.run.evolve import EndpointFailure

    try:
        summary = _run_with_progress(args, fn)
    except EndpointFailure as exc:
        if args.json:
            from rewardgen.run.evolve import labelled
            from rewardgen.store import RunStore

            run = RunStore(run_dir).read_run()
            emit_json({"run_dir": str(run_dir), **labelled(run.get("best"), run.get("generations", [])),
                       "error": str(exc)})
        print(term(f"rewardgen: the run stopped: {flatten(exc, 1000)} (once fixed: {resume_command(run_dir)})",
                   markup=False),
              file=sys.stderr)
        return EXIT_FAILED
    return _report_run(args, summary)


def _report_run(args, summary: dict) -> int:
    if args.json:
        emit_json({"run_dir": summary["run_dir"], "best": summary["best"], "generations": summary["generations"]})
    else:
        from rich.console import Console

        console = Console(highlight=False)
        console.print(summary_table(summary, console.width))
        best = summary.get("best")
        if best:
            path = RunStore(Path(summary["run_dir"])).cand_dir(best["generation"], best["candidate"]) / REWARD_FILE
            conf = best.get("confirmed")
            console.print(f"best: {candidate_label(best['generation'], best['candidate'])} "
                          f"fitness {best['fitness']:.4g}" + (f" (confirmed: mean {conf['mean']:.4g} ± {conf['std']:.2g} "
                                                              f"over {conf['seeds']} new seed(s))" if conf else ""),
                          highlight=False)
            console.print(f"  reward: {term(path)}", soft_wrap=True)
        report = Path(summary["run_dir"]) / REPORT_FILE
        if RunStore(Path(summary["run_dir"])).is_file(REPORT_FILE):
            console.print(f"  report: {term(report)}", soft_wrap=True)
    from rewardgen.run.evolve import failure_summary

    cause = failure_summary(summary.get("generations") or [])
    if cause:  # nothing usable came out of the run: say why in one line, exit non-zero
        print(term(f"rewardgen: {cause} (details: rewardgen report {shlex.quote(str(summary['run_dir']))})",
                   markup=False),
              file=sys.stderr)
        return EXIT_FAILED
    return 0


def user_reach(args):
    """Where the user points rewardgen (endpoint, model, templates, cluster), from their command line."""
    from rewardgen.run.config import UserReach

    return UserReach(base_url=getattr(args, "base_url", None), model=getattr(args, "model", None),
                     prompts=getattr(args, "prompts", None), ray_address=getattr(args, "ray_address", None),
                     use_run_endpoint=bool(getattr(args, "use_run_endpoint", False)))


def cmd_resume(args) -> int:
    from rewardgen.run.evolve import resume
    from rewardgen.store import RunStore

    run = RunStore.open(Path(args.run)).read_run()
    generations = getattr(args, "generations", None)
    reach = user_reach(args)
    if generations is not None:
        from rewardgen.run.evolve import check_reach, extend_run

        check_reach(Path(args.run), reach)  # a run naming another endpoint is refused before it changes
        extend_run(Path(args.run), generations)  # a bad total is one line (exit 2) before anything runs
    elif run.get("status") == "finished" and not args.json:
        done = len(run.get("generations", []))
        print(term(f"rewardgen resume: {args.run} already finished all {done} generation(s); nothing to do. To "
                   f"train more generations: `rewardgen resume {shlex.quote(str(args.run))} --generations {done + 1}` "
                   "(the new total), or start the next one from the web UI (`rewardgen serve`).", markup=False),
              file=sys.stderr)
    return _run_or_stop(args, lambda progress: resume(Path(args.run), progress, reach), Path(args.run))


def cmd_train(args) -> int:
    from rewardgen.run.evolve import train_file
    from rewardgen.sandbox.validate import validate_source

    source = read_reward(args.reward)
    config = config_from_args(args)
    config.validate()
    task = task_named(config.task)
    issues = validate_source(source)
    if issues:  # refused before anything runs: no run directory for a file that cannot be trained
        if args.json:
            emit_json({"run_dir": None, "status": "static", "fitness": None, "success": False,
                        "error": str(issues[0]), "env_steps": 0, "env_steps_per_second": None})
        else:
            print(term(f"rejected before training (static check) - {args.reward}:", markup=False), file=sys.stderr)
            for issue in issues:
                print("  " + term(str(issue), markup=False), file=sys.stderr)
            print("nothing was trained; fix the file (`rewardgen check` explains more) and run again", file=sys.stderr)
        return 1
    result = _run_with_progress(args, lambda progress: train_file(source, config, Path(args.runs_dir), progress))
    m = result["metrics"]
    out = {"run_dir": result["run_dir"], "status": m.get("status"), "fitness": m.get("fitness"),
           "success": bool(m.get("success")), "error": m.get("error"), "env_steps": m.get("env_steps"),
           "env_steps_per_second": m.get("env_steps_per_second")}
    if args.json:
        emit_json(out)
    else:
        from rich.console import Console

        console = Console(highlight=False)
        if m.get("status") == "ok":
            verdict = (f"success: at or above the threshold {task.success_threshold:g}" if m.get("success")
                       else f"below the success threshold {task.success_threshold:g}")
            fitness_name = task.fitness.get("name", "fitness")
            console.print(f"trusted fitness ({term(fitness_name)}): [bold]{m['fitness']:.4g}[/], {verdict}")
            console.print(f"trained {human_steps(m.get('env_steps'))} env-steps at "
                          f"{human_steps(round(m.get('env_steps_per_second') or 0))} env-steps/s")
            table = components_table(m.get("training") or {}, console.width)
            if table is not None:
                console.print(table)
        else:
            console.print(f"[red]{term(m.get('status'))}[/]: {term(m.get('error'))}")
            tb = m.get("traceback")
            if tb and tb.strip() != (m.get("error") or "").strip():
                console.print(term(tb, markup=False), markup=False)
        console.print(f"run directory: {term(result['run_dir'])}", soft_wrap=True)
    return 0 if m.get("status") == "ok" else 1


def cmd_check(args) -> int:
    from dataclasses import replace

    from rewardgen.procs.check import CHECK_LIMITS, check_reward

    source = read_reward(args.reward)
    task = task_named(args.task)
    limits = replace(CHECK_LIMITS, wall_seconds=args.timeout) if args.timeout else None
    verdict = check_reward(source, task, steps=args.steps, seed=args.seed, limits=limits)
    if args.json:
        emit_json(verdict.to_json())
    else:
        print(term(verdict.explain(), markup=False))  # the reward's own text: shown, never obeyed
    return 0 if verdict.ok else 1


def cmd_bench(args) -> int:
    from rich.console import Console

    from rewardgen.bench import train as bench

    if args.what == "suite":
        return cmd_bench_suite(args)
    if args.what == "throughput" and args.sim == "cpu":
        args.task_list = throughput_tasks(args)  # checked before anything runs
    args.task = args.task or "halfcheetah-run"
    task_named(args.task)
    if args.what == "export":
        return cmd_bench_export(args)
    args.workers = args.workers or 1
    args.steps_given = args.steps is not None
    args.steps = args.steps or 300_000
    if args.what == "schedule":
        args.samples = args.samples or 8
    console = Console(stderr=args.json)
    if args.what == "schedule":
        from rewardgen.bench.schedule import compare_schedules

        seeds = list(range(args.seed, args.seed + (args.seeds or 1)))
        from rewardgen.bench.schedule import COMPARED

        schedules = [x.strip() for x in (args.schedules or ",".join(COMPARED)).split(",") if x.strip()]
        unknown = [x for x in schedules if x not in COMPARED]
        if unknown or not schedules:
            raise UsageError(f"--schedules takes a comma-separated list of {', '.join(COMPARED)}, got "
                             f"{args.schedules!r}")
        if args.steps_given and args.schedule_steps and args.steps != args.schedule_steps:
            raise UsageError(f"--steps {args.steps} and --schedule-steps {args.schedule_steps} both set the "
                             "schedule's budget: give one")
        budget = args.schedule_steps or (args.steps if args.steps_given else None)
        if args.runs_dir is not None:
            from rewardgen.store import check_runs_dir

            check_runs_dir(args.runs_dir)  # a path that cannot hold runs: one line, exit 2, before any training
        console.print(f"bench schedule on {args.task}: full vs successive halving vs adaptive, {args.samples} "
                      f"candidates, same proposals and seeds per seed (seeds {', '.join(map(str, seeds))}); "
                      f"load {load_text()}")
        result = compare_schedules(args.task, samples=args.samples, steps=budget, trainer=args.trainer,
                                   seeds=seeds, runs_dir=args.runs_dir, schedules=schedules,
                                   say=lambda line: console.print(line, highlight=False), judge_seeds=args.judge_seeds)
        if not args.json:
            for name, med in result["median"].items():
                share = f" ({med['steps_ratio']:.1%} of full's)" if med.get("steps_ratio") is not None else ""
                gap = med.get("fitness_gap")
                fit = med.get("best_fitness")
                judged = med.get("judged_gap")
                console.print(f"median over {len(seeds)} seed(s) {name:>8}: {human_steps(med['env_steps'])} "
                              f"env-steps{share}, best fitness {fit if fit is None else round(fit, 3)}"
                              + ("" if gap is None else f", {abs(gap):.1%} {'below' if gap > 0 else 'above'} "
                                 "full's best")
                              + ("" if judged is None else f"; judged pick {abs(judged):.1%} "
                                 f"{'below' if judged > 0 else 'above'} the best reward"), highlight=False)
    elif args.what == "evolve":
        from rewardgen.bench.evolve import bench_evolve

        if args.sim != "cpu":
            raise UserError("bench evolve measures the CPU simulator only (the Warp path: bench throughput --sim warp)")
        quick = args.quick
        steps = 4096 if quick and not args.steps_given else args.steps
        samples = args.samples or (2 if quick else 4)
        repeats = args.repeats or (1 if quick else 3)
        halving = args.halving_steps or (4096 if quick else None)
        console.print(f"bench evolve on {args.task}: trainer alone vs evolve (K={samples}, {human_steps(steps)} "
                      f"env-steps, full schedule, with and without video; halving at "
                      f"{human_steps(halving) if halving else 'the default'} budget), "
                      f"{args.workers} worker(s), {repeats} repeat(s), interleaved; load {load_text()}")
        result = bench_evolve(args.task, steps=steps, samples=samples, repeats=repeats, halving_steps=halving,
                              workers=args.workers, seed=args.seed, eval_episodes=1 if quick else None,
                              sb3_steps=2048 if quick else 16_384,
                              say=lambda line: console.print(line, highlight=False))
        if not args.json:
            console.print(f"trainer alone: {human_steps(result['trainer_alone_env_steps_per_s'])} env-steps/s (median)")
            for row in ("full", "full+video", "halving"):
                r = result[row]
                console.print(f"{row:>10}: {human_steps(r['env_steps_per_s'])} env-steps/s, "
                              f"efficiency {r['efficiency']:.2f}, overhead {r['overhead_per_candidate_s']:.2f} "
                              f"s/candidate (measured "
                              f"{r['overhead_measured_s']:.2f} s), wall {r['wall_seconds']:.1f} s (medians)")
            r = result["train_command"]
            console.print(f"`rewardgen train`: {human_steps(r['env_steps_per_s'])} env-steps/s whole command, "
                          f"{r['train_vs_sb3']:.1f}x SB3 PPO's training-only {human_steps(r['sb3_env_steps_per_s'])}/s, "
                          f"wall {r['wall_seconds']:.1f} s (medians)")
    elif args.what == "throughput" and args.sim == "warp":
        from rewardgen.bench.warp import warp_throughput

        console.print(f"bench throughput on {args.task}: MuJoCo Warp on {args.device}")
        result = warp_throughput(args.task, device=args.device)
    elif args.what == "throughput":
        tasks = throughput_tasks(args)
        repeats = args.repeats or 3
        ppo_steps = args.steps if args.steps_given else 200_000
        console.print(f"bench throughput on {', '.join(tasks)}: a = bare mujoco.rollout, b = rewardgen PPO "
                      f"(sandboxed worker, {human_steps(ppo_steps)} env-steps), c = SB3 PPO over 8 gymnasium envs "
                      f"({human_steps(args.sb3_steps)} env-steps) - side by side, {repeats} repeat(s); "
                      f"load {load_text()}", highlight=False)
        result = bench.throughput_table(tasks, ppo_steps=ppo_steps, sb3_steps=args.sb3_steps,
                                        sim_seconds=args.sim_seconds, repeats=repeats, seed=args.seed,
                                        say=lambda line: console.print(line, highlight=False))
        console.print(throughput_table_view(result, console.width))  # (with --json on stderr, as the progress)
    else:
        console.print(f"bench learning on {args.task}: rewardgen PPO vs SB3 PPO, {human_steps(args.steps)} env-steps x "
                      f"{args.seeds or 3} seeds")
        result = bench.learning(args.task, args.steps, seeds=tuple(range(args.seeds or 3)))
    if args.json:
        emit_json(result)
    elif args.what not in ("schedule", "evolve", "throughput"):
        console.print_json(json.dumps(result, default=str))
    return 0


def throughput_tasks(args) -> list[str]:
    """``bench throughput``'s tasks: ``--tasks all`` or a comma-separated list, ``--task T``, or by default
    one task per gymnasium env (``bench.train.THROUGHPUT_TASKS``); each checked to load (exit 2 if not)."""
    from rewardgen.bench.train import THROUGHPUT_TASKS

    if getattr(args, "task_list", None):
        return args.task_list
    if args.tasks is not None and args.task is not None:
        raise UsageError("give --task or --tasks, not both")
    if args.tasks is not None:
        names = [x.strip() for x in args.tasks.split(",") if x.strip()]
        if not names:
            raise UsageError(f"--tasks takes 'all' or a comma-separated list of task ids, got {args.tasks!r}")
        tasks = list(THROUGHPUT_TASKS) if names == ["all"] else names
    else:
        tasks = [args.task] if args.task is not None else list(THROUGHPUT_TASKS)
    if len(set(tasks)) != len(tasks):
        raise UsageError(f"--tasks names a task twice: {args.tasks!r}")
    for name in tasks:
        task_named(name)
    return tasks


def cmd_bench_export(args) -> int:
    from rich.console import Console

    from rewardgen.bench.export import bench_export

    reward = read_reward(args.reward) if args.reward else None
    steps, repeats = args.steps or 2000, args.repeats or 5
    console = Console(stderr=args.json, highlight=False)
    console.print(f"bench export on {term(args.task)}: the exported reward's forms against the raw env, "
                  f"{steps} env-steps x {repeats} repeats, interleaved; load {load_text()}")
    result = bench_export(args.task, reward, steps=steps, repeats=repeats, envs=args.envs,
                          say=lambda line: console.print(line))
    result["load"] = load_text()
    if args.json:
        emit_json(result)
        return 0
    cpu, wall = result["us_per_step_cpu"], result["us_per_step_wall"]
    console.print(f"CPU time of this process per env step: raw env {cpu['raw']:.0f} us; plain RewardWrapper "
                  f"{cpu['plain']:.0f} us ({result['plain_ratio']:.2f}x raw): the wrapper with its State and no "
                  f"reward {cpu['state']:.0f} us ({result['state_ratio']:.2f}x), the reward's own calls "
                  f"{result['reward_us']:.0f} us")
    console.print(f"  vectorised ({result['envs']} envs, per env-step): raw {cpu['vec_raw']:.0f} us, plain "
                  f"{cpu['vec_plain']:.0f} us ({result['vec_plain_ratio']:.2f}x)")
    console.print(f"wall time per env step: raw {wall['raw']:.0f} us, plain {wall['plain']:.0f} us "
                  f"({result['plain_ratio_wall']:.2f}x), SandboxedRewardWrapper {wall['sandboxed']:.0f} us "
                  f"({result['sandboxed_ratio_wall']:.2f}x); vectorised raw {wall['vec_raw']:.0f} us, sandboxed "
                  f"{wall['vec_sandboxed']:.0f} us ({result['vec_sandboxed_ratio_wall']:.2f}x); load {result['load']}")
    return 0


def cmd_bench_suite(args) -> int:
    from rich.console import Console

    from rewardgen.bench.suite import SuiteConfig, parse_tasks, run_suite, share_line, software_lines

    tasks, task_steps = parse_tasks(args.tasks)
    config = SuiteConfig(tasks=tasks, task_steps=task_steps, out=args.out, seeds=args.seeds or 3, steps=args.steps,
                         workers=args.workers, samples=args.samples or 4, generations=args.generations, seed=args.seed,
                         confirm_seeds=args.confirm_seeds)
    console = Console(stderr=args.json)
    result = run_suite(config, SuiteProgress(console))
    if args.json:
        emit_json(result)
        return 0
    console.print(suite_table(result, args.out, console.width))
    console.print(share_line(result), highlight=False)
    for line in software_lines(result):
        console.print(term(line), highlight=False)
    console.print(f"table: {term(Path(args.out) / 'suite.md')}", soft_wrap=True)
    return 0


def cmd_debug(args) -> int:
    from rewardgen.contract.policy import PolicyExport, PolicyFormatError
    from rewardgen.inspect.debug import (
        DebugError,
        PolicyMismatch,
        check_policy_fits,
        debug_reward,
    )

    source = read_reward(args.reward)
    task = task_named(args.task)
    policy = None
    if args.policy:
        path = Path(args.policy)
        if not path.is_file():
            raise UsageError(f"no such policy file: {path}")
        try:
            policy = PolicyExport.from_bytes(path.read_bytes())
        except PolicyFormatError as exc:
            raise UsageError(f"{path}: {exc}") from None
        try:
            check_policy_fits(policy, task)
        except PolicyMismatch as exc:
            raise UsageError(f"--policy {path}: {exc}", prog="rewardgen debug") from None
    try:
        report = debug_reward(source, task, policy=policy, episodes=args.episodes, seed=args.seed)
    except DebugError as exc:
        if args.json:
            emit_json({"ok": False, "stage": exc.stage, "error": str(exc)})
        else:
            print(f"the reward could not be run ({exc.stage}): {exc}", file=sys.stderr)
        return 1
    if args.json:
        emit_json(report.to_json())
    else:
        from rich.console import Console

        from rewardgen.cli.display import debug_table

        console = Console(highlight=False)
        console.print(term(report.heading(), markup=False), markup=False, soft_wrap=True)
        console.print(debug_table(report, console.width))
        for line in report.flag_lines():  # component names come from the reward: shown, never obeyed
            console.print(term(line, markup=False), markup=False)
    return 0


def cmd_report(args) -> int:
    from rewardgen.inspect.report import write_report
    from rewardgen.store import RunStore

    RunStore.open(Path(args.run))
    out = writable_output(Path(args.output)) if args.output else Path(args.run) / REPORT_FILE
    try:
        out = write_report(Path(args.run), out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}", prog="rewardgen report") from None
    print(out)
    return 0


def cmd_export(args) -> int:
    from rewardgen.inspect.export import export_reward, parse_candidate
    from rewardgen.store import RunStore

    RunStore.open(Path(args.run))
    if getattr(args, "policy", False):
        return _export_policy(args)
    out = writable_output(Path(args.output))
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    try:
        path = export_reward(Path(args.run), parse_candidate(args.candidate) if args.candidate else None, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}", prog="rewardgen export") from None
    print(path)
    return 0


def _export_policy(args) -> int:
    from rewardgen.inspect.policy_export import export_policy
    from rewardgen.store import candidate_from_text

    candidate = candidate_from_text(args.candidate) if args.candidate else None
    result = export_policy(Path(args.run), candidate, Path(args.output), force=args.force)
    folder = Path(result["dir"])
    print(f"policy of {result['candidate']} ({result['task']}) written to {term(folder, markup=False)}: "
          f"{', '.join(result['files'])} (checked against the trusted evaluator's policy: largest difference "
          f"{result['max_difference']:.1g})")
    if result["onnx"] != "written":
        print(f"  {result['onnx']}")
    print(f"  load it with torch alone: import policy; pi = policy.load('{term(folder / 'policy.pt', markup=False)}'); "
          "action = pi.act(obs)  (policy.py is in the same folder)")
    return 0


def cmd_play(args) -> int:
    from rewardgen.evaluate.window import display_available
    from rewardgen.inspect.play import default_video_name, play
    from rewardgen.inspect.policy_export import trained_policy
    from rewardgen.store import candidate_from_text

    RunStore.open(Path(args.run))
    candidate = candidate_from_text(args.candidate) if args.candidate else None
    if args.window and not display_available():
        raise UsageError("--window needs a display (DISPLAY or WAYLAND_DISPLAY is not set); leave it out to "
                         "write only the video", prog="rewardgen play")
    trained = trained_policy(Path(args.run), candidate)  # no such candidate, no policy: one line first
    out = writable_output(Path(args.output or default_video_name(Path(args.run), trained.label)))
    if out.suffix.lower() != ".mp4":
        raise UsageError(f"-o {out}: the video is an .mp4 file; give a name ending in .mp4", prog="rewardgen play")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite it, or -o another file", prog="rewardgen play")
    result = play(Path(args.run), candidate, out, seed=args.seed, seconds=args.seconds, window=args.window,
                  trained=trained)
    v = result["video"]
    ended = " (the episode ended: terminated)" if v.get("terminated") else ""
    fit = "" if result.get("fitness") is None else f", trusted fitness {result['fitness']:.4g}"
    print(f"{result['candidate']} of {term(Path(args.run).name, markup=False)} ({result['task']}{fit}): "
          f"{v.get('steps')} steps, {v.get('seconds')} s of video{ended}, seed {result['seed']}")
    print(term(v.get("path") or out, markup=False))
    if result.get("window"):
        w = result["window"]
        print(f"shown in a window: {w['steps']} steps" + (" (closed early)" if w.get("closed") else ""))
    elif result.get("window_error"):
        print(term(f"rewardgen play: no window ({flatten(result['window_error'], 300)}); the video is written",
                   markup=False), file=sys.stderr)
    return 0


def cmd_feedback(args) -> int:
    from rewardgen.run import feedback

    item = feedback.add_text(Path(args.run), args.text, args.candidate)
    print(f"feedback stored; generation {item['applies_to']} will use it")
    return 0


def cmd_prefer(args) -> int:
    from rewardgen.run import feedback

    ranking = None
    if args.ranking:
        try:
            ranking = [int(x) for x in args.ranking.split(",")]
        except ValueError:
            raise UsageError(f"--ranking must be candidate numbers separated by commas, got {args.ranking!r}") from None
    best = args.best if args.best is not None else (ranking[0] if ranking else None)
    if best is None:
        raise UsageError("give --best C (and optionally --worst C) or --ranking C,C,...")
    item = feedback.add_preference(Path(args.run), args.generation, best, args.worst, ranking)
    print(f"preference stored; generation {item['applies_to']} will use it")
    return 0


def cmd_serve(args) -> int:
    from rewardgen.web import check_bind, serve

    runs_dir = Path(args.runs_dir)
    if not runs_dir.is_dir():
        raise UsageError(f"no runs directory at {runs_dir}")
    try:
        check_bind(args.host, args.token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_port_free(args.host, args.port)
    serve(runs_dir, host=args.host, port=args.port, token=args.token)  # it prints the URL once bound
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once, the way the server will, so a busy port or a bad address is one line
    (UsageError) before anything says the UI started."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot serve on --host {host}: {getattr(exc, 'strerror', None) or exc}",
                         prog="rewardgen serve") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is already in use (another `rewardgen serve`?); "
                                 f"stop it or choose another with --port", prog="rewardgen serve") from None
            raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}", prog="rewardgen serve") from None


def cmd_final(args) -> int:
    from rich.console import Console

    from rewardgen.run.events import Event, FinalRun
    from rewardgen.run.executors import make_executor
    from rewardgen.run.final import final_evaluation

    console = Console(stderr=args.json)
    executor = make_executor(args.executor, ray_address=args.ray_address)

    class _Progress:
        def event(self, event: Event) -> None:
            if isinstance(event, FinalRun):
                fit = "" if event.fitness is None else f" fitness {event.fitness:.4g}"
                console.print(f"  {event.method} seed {event.seed_index}: {event.status}{fit}"
                              + (" (finished before: reused)" if event.reused else ""))

    try:
        result = final_evaluation(Path(args.run), seeds=args.seeds, steps=args.steps, executor=executor,
                                  progress=_Progress(), episodes=args.episodes)
    finally:
        executor.close()
    if args.json:
        emit_json(result)
        return 0
    console.print(final_table(result, Path(args.run).name, console.width))
    score = result.get("score")
    console.print(f"human-normalised score of the evolved reward: {score:.3f}" if score is not None
                  else f"human-normalised score: n/a ({result.get('score_note')})")
    return 0
