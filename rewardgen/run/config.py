"""A run's settings: what ``rewardgen evolve`` was asked for, kept in ``run.json`` for ``resume``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from rewardgen.errors import UserError
from rewardgen.run.schedule import SCHEDULES
from rewardgen.tasks.spec import Task
from rewardgen.trainers import TRAINERS


class ConfigError(UserError):
    """A run setting that makes no sense (e.g. a non-positive count); the message is for the user."""


@dataclass
class EvolveConfig:
    """Settings of one run (stored in ``run.json``; ``resume`` reuses them).

    :param task: task id (``rewardgen tasks``) or path to a task YAML file.
    :param samples: candidates per generation (K).
    :param generations: number of generations (G).
    :param steps: training env-steps per candidate; None uses the task's default.
    :param seed: seeds proposals, training and evaluation.
    :param workers: candidates trained at once; None sizes it to the machine's cores.
    :param schedule: "adaptive" (all train in increments of 1/40 of the budget, each continuing from
        its saved state; after each increment the trusted fitness drops candidates that are clearly
        behind, and the generation's step budget, ``adaptive_total_steps``, drops the worst when it
        cannot carry them all; the last one trains the full budget: ``rewardgen.run.schedule``),
        "halving" (train all for a fifth of the budget, keep the best 3/8, continue them from their
        saved state to half the budget, keep the best third, finish those) or "full" (every candidate
        gets the full budget).
    :param trainer: training algorithm run in the worker: "ppo" (rewardgen's batched PPO) or "sb3".
    :param proposer: who writes rewards: "offline" or "openai"; ``llm`` picks it when the run starts.
    :param llm: "auto" (the LLM when OPENAI_API_KEY, OPENAI_BASE_URL or ``base_url`` is set, else
        offline), "openai" or "offline".
    :param model: LLM model name.
    :param base_url: OpenAI-compatible endpoint; None uses OPENAI_BASE_URL or OpenAI's.
    :param temperature: LLM sampling temperature.
    :param llm_timeout: seconds per LLM request before the client retries.
    :param critic: "sandbox" (check code before training) or "llm" (also an LLM review pass).
    :param prompts: directory of Jinja2 templates overriding ``prompts/``.
    :param prompt_chars: the most characters an LLM request should have (about 4 per token): older
        generations are compressed to fit, the newest never is. The default suits a 32k-token context.
    :param replay: a past run directory whose recorded LLM answers are replayed (no network).
    :param executor: "local" (worker processes on this machine) or "ray" (Ray tasks on a cluster).
    :param ray_address: the Ray cluster to join (None starts or finds a local one).
    :param sim: batched simulator of the ppo trainer: "cpu" (mujoco.rollout) or "warp" (MuJoCo Warp).
    :param device: torch / Warp device for training ("cpu", "cuda", "cuda:1").
    :param video: render each finished candidate's policy to ``video.mp4`` (``--no-video`` skips it).
    :param interactive: pause after each generation for feedback in the terminal (``--interactive``).
    :param mode: "code" (proposers write free reward code) or "params" (they fill the weights and
        targets of a reward template built from the schema, Language-to-Rewards style).
    :param num_envs: simulated worlds per training batch; None uses the trainer's default.
    :param timeout: wall-clock seconds per candidate's training; None derives it from ``steps``.
    :param eval_episodes: trusted evaluation episodes; None uses the task's default.
    :param check_steps: env-steps of the smoke run that checks a candidate before training.
    :param memory_gb: address-space limit of each worker.
    :param confirm_seeds: before naming the run's best, retrain the 3 candidates with the highest trusted
        fitness from scratch on this many new training seeds and name the one with the highest mean
        (``rewardgen.run.confirm``); 0 (the default) names the highest single-seed fitness.
    """

    task: str
    samples: int = 4
    generations: int = 3
    steps: int | None = None
    seed: int = 0
    workers: int | None = None
    trainer: str = "ppo"
    schedule: str = "halving"
    proposer: str = "offline"
    llm: str = "auto"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    temperature: float = 1.0
    llm_timeout: float = 120.0
    critic: str = "sandbox"
    prompts: str | None = None
    prompt_chars: int = 60_000
    replay: str | None = None
    mode: str = "code"
    video: bool = True
    interactive: bool = False
    executor: str = "local"
    ray_address: str | None = None
    sim: str = "cpu"
    device: str = "cpu"
    num_envs: int | None = None
    timeout: float | None = None
    eval_episodes: int | None = None
    check_steps: int = 256
    memory_gb: float = 8.0
    confirm_seeds: int = 0

    def validate(self) -> None:
        for name in ("samples", "generations", "check_steps", "prompt_chars"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("steps", "workers", "timeout", "eval_episodes", "num_envs"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.confirm_seeds < 0:
            raise ConfigError(f"--confirm-seeds must be 0 or more, got {self.confirm_seeds}")
        if self.llm not in ("auto", "openai", "offline"):
            raise ConfigError(f"--llm must be auto, openai or offline, got {self.llm!r}")
        if self.critic not in ("sandbox", "llm"):
            raise ConfigError(f"--critic must be sandbox or llm, got {self.critic!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"--temperature must be between 0 and 2, got {self.temperature}")
        if self.prompts and not Path(self.prompts, "system.j2").is_file():
            raise ConfigError(f"--prompts {self.prompts}: no system.j2 there (copy prompts/ and edit it)")
        if self.sim not in ("cpu", "warp"):
            raise ConfigError(f"--sim must be cpu or warp, got {self.sim!r}")
        if self.sim == "warp" and self.trainer != "ppo":
            raise ConfigError("--sim warp needs --trainer ppo")
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"--executor must be local or ray, got {self.executor!r}")
        if self.mode not in ("code", "params"):
            raise ConfigError(f"--mode must be code or params, got {self.mode!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.trainer not in TRAINERS:
            raise ConfigError(f"unknown trainer {self.trainer!r}; choose one of {', '.join(TRAINERS)}")

    def budget(self, task: Task) -> int:
        """Env-steps of one full training: ``steps``, else the task's default (the one place it is decided)."""
        return int(self.steps or task.default_steps)

    @classmethod
    def from_dict(cls, raw: dict) -> EvolveConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def resolve_proposer(config: EvolveConfig) -> str:
    """Which proposer ``--llm`` means here and now: "openai" or "offline"."""
    if config.replay:
        return "openai"
    if config.llm == "auto":
        from rewardgen.proposers.client import llm_configured

        return "openai" if llm_configured(config.base_url) else "offline"
    return config.llm


def effective_trainer(task: Task, trainer: str) -> tuple[str, str | None]:
    """The trainer that can run ``task``: ppo's batched simulator covers the tasks whose env rules it
    reproduces; other tasks train with sb3 (and a note saying so)."""
    if trainer != "ppo":
        return trainer, None
    from rewardgen.sim.rules import unsupported_reason

    reason = unsupported_reason(task)
    return ("sb3", f"{reason}; training with --trainer sb3 instead") if reason else ("ppo", None)




# ----- settings a run directory may not choose for the user
@dataclass(frozen=True)
class UserReach:
    """Where the user points rewardgen, from their command line and environment (never from a run's
    files): the LLM endpoint and model, prompt templates (rendered as Jinja2: code), a Ray cluster.

    :param base_url: ``--base-url`` (None: ``OPENAI_BASE_URL``, else OpenAI's API).
    :param model: ``--model`` (None: the run's recorded model name, which can send nothing secret).
    :param prompts: ``--prompts``. :param ray_address: ``--ray-address``.
    :param use_run_endpoint: ``--use-run-endpoint``: the user trusts the endpoint the run recorded.
    """

    base_url: str | None = None
    model: str | None = None
    prompts: str | None = None
    ray_address: str | None = None
    use_run_endpoint: bool = False


def _endpoint(url: str | None) -> str:
    import os

    from rewardgen.proposers.client import DEFAULT_ENDPOINT

    return (url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_ENDPOINT).strip().rstrip("/").lower()


def continue_settings(recorded: EvolveConfig, reach: UserReach, where: str) -> tuple[EvolveConfig, list[str]]:
    """The settings to continue a recorded run with (``resume``, the web UI's next generation, ``evolve
    --replay``), and one-line notes on what changed. A run directory is untrusted input: the API key
    goes only to the endpoint the user names (``reach``); a run that recorded another endpoint is
    refused (ConfigError, one line) unless ``reach.use_run_endpoint``; prompt templates and a Ray address
    the run names are refused unless the user gives them again; limits are checked like a new run's."""
    import dataclasses
    import os

    config = dataclasses.replace(recorded)
    notes: list[str] = []
    llm = config.proposer == "openai" and not config.replay
    if reach.use_run_endpoint and reach.base_url:
        raise ConfigError("give either --base-url or --use-run-endpoint, not both")
    if reach.use_run_endpoint:
        if not recorded.base_url:
            raise ConfigError(f"{where} recorded no LLM endpoint of its own; --use-run-endpoint has nothing to use")
    elif reach.base_url:
        if llm and recorded.base_url and _endpoint(recorded.base_url) != _endpoint(reach.base_url):
            notes.append(f"continuing with your LLM endpoint {reach.base_url} (the run was made with "
                         f"{recorded.base_url})")
        config.base_url = reach.base_url
    elif recorded.base_url and _endpoint(recorded.base_url) != _endpoint(None):
        if llm:
            raise ConfigError(
                f"{where} was made with the LLM endpoint {recorded.base_url!r}, not yours "
                f"({_endpoint(None)}); rewardgen sends OPENAI_API_KEY only where you point it: pass --base-url URL "
                f"(or set OPENAI_BASE_URL) for your own endpoint, or --use-run-endpoint if you trust that one")
        config.base_url = None  # an offline run never talks to it: nothing to ask
    if reach.model:
        config.model = reach.model
    if not isinstance(config.model, str) or not config.model.isprintable() or not 0 < len(config.model) <= 200:
        raise ConfigError(f"{where} records an unusable LLM model name; pass --model NAME")
    if recorded.prompts and not reach.prompts:
        raise ConfigError(f"{where} was made with prompt templates from {recorded.prompts!r}; templates are code "
                          "rewardgen renders, so it uses only those you name: pass --prompts DIR")
    config.prompts = reach.prompts or None
    if recorded.executor == "ray" and recorded.ray_address and not reach.ray_address:
        raise ConfigError(f"{where} ran on the Ray cluster at {recorded.ray_address!r}; rewardgen joins only a "
                          "cluster you name: pass --ray-address ADDRESS")
    if reach.ray_address:
        config.ray_address = reach.ray_address
    elif recorded.executor == "ray":
        config.ray_address = None
    try:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        total_gb = float("inf")
    if not isinstance(config.memory_gb, (int, float)) or not 0 < config.memory_gb <= max(total_gb, 1.0):
        raise ConfigError(f"{where} records a memory limit of {config.memory_gb!r} GB per worker, more than this "
                          f"machine has ({total_gb:.0f} GB): the limit would not hold")
    config.validate()
    return config, notes
