"""Proposers write K candidate rewards per generation; ``get_proposer(name)`` is the registry.

``base`` holds the interface (``Proposer``, ``ProposalContext``, ``Proposal``, ``CandidateRecord``).
``offline`` is the built-in proposer (no LLM): the genome operators of ``genome`` over the term
library (``library``, code mode) or the reward template (``params``, parameter mode). ``llm`` asks an
OpenAI-compatible endpoint through ``client``, with ``prompts``, ``extract`` and ``reflection``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardgen.proposers.base import CandidateRecord, Proposal, ProposalContext, Proposer

__all__ = ["CandidateRecord", "Proposal", "ProposalContext", "Proposer", "get_proposer", "PROPOSERS"]

#: the names ``--llm`` accepts (``offline-params`` is ``offline`` with ``--mode params``)
PROPOSERS = ("offline", "offline-params", "openai")


def get_proposer(name: str, config: Any = None) -> Proposer:
    """The proposer called ``name``; ``config`` (an EvolveConfig) carries the LLM settings."""
    mode = getattr(config, "mode", "code")
    if name in ("offline", "offline-params"):
        from rewardgen.proposers.offline import OfflineProposer  # imported on use: each pulls its own deps

        return OfflineProposer(mode="params" if name == "offline-params" or mode == "params" else "code")
    if name == "openai":
        from rewardgen.proposers.client import LLMSettings
        from rewardgen.proposers.llm import LLMProposer

        settings = LLMSettings(model=config.model, base_url=config.base_url, temperature=config.temperature,
                               timeout=config.llm_timeout)
        return LLMProposer(settings, prompts_dir=Path(config.prompts) if config.prompts else None,
                           critic=config.critic, replay=bool(config.replay), mode=mode,
                           prompt_chars=int(getattr(config, "prompt_chars", 60_000)))
    raise ValueError(f"unknown proposer {name!r}; available: offline, openai")
