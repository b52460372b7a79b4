"""Proposers write K candidate rewards per generation; ``get_proposer(name)`` is the registry.

``base`` holds the interface (``Proposer``, ``ProposalContext``, ``Proposal``, ``CandidateRecord``).
``offline`` is the built-in proposer (no LLM): the genome operators of ``genome`` over the term
library (``library``, code mode) or the reward template (``params``, parameter mode). ``llm`` asks an
OpenAI-compatible endpoint through ``client``, with ``prompts``, ``extract`` and ``reflection``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from rewardgen.proposers.base import CandidateRecord, Proposal, ProposalContext, Proposer

__all__ = ["PROPOSERS", "CandidateRecord", "Proposal", "ProposalContext", "Proposer", "ProposerSettings",
           "get_proposer"]

#: the names ``--llm`` accepts (``offline-params`` is ``offline`` with ``--mode params``)
PROPOSERS = ("offline", "offline-params", "openai")


class ProposerSettings(Protocol):
    """What ``get_proposer`` reads of a run's settings (``rewardgen.run.config.EvolveConfig`` is one)."""

    @property
    def mode(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def temperature(self) -> float: ...
    @property
    def llm_timeout(self) -> float: ...
    @property
    def critic(self) -> str: ...
    @property
    def prompts(self) -> str | None: ...
    @property
    def prompt_chars(self) -> int: ...
    @property
    def replay(self) -> str | None: ...


def get_proposer(name: str, config: ProposerSettings | None = None) -> Proposer:
    """The proposer called ``name``; ``config`` carries the mode and the LLM settings (the LLM needs it)."""
    mode = config.mode if config is not None else "code"
    if name in ("offline", "offline-params"):
        from rewardgen.proposers.offline import OfflineProposer  # imported on use: each pulls its own deps

        return OfflineProposer(mode="params" if name == "offline-params" or mode == "params" else "code")
    if name == "openai":
        if config is None:
            raise ValueError("the openai proposer needs the run's LLM settings")
        from rewardgen.proposers.client import LLMSettings
        from rewardgen.proposers.llm import LLMProposer

        settings = LLMSettings(model=config.model, base_url=config.base_url, temperature=config.temperature,
                               timeout=config.llm_timeout)
        return LLMProposer(settings, prompts_dir=Path(config.prompts) if config.prompts else None,
                           critic=config.critic, replay=bool(config.replay), mode=mode,
                           prompt_chars=int(config.prompt_chars))
    raise ValueError(f"unknown proposer {name!r}; available: offline, openai")
