"""Proposers write K candidate rewards per generation; ``get_proposer(name)`` is the registry.

``base`` holds the interface (``Proposer``, ``ProposalContext``, ``Proposal``, ``CandidateRecord``);
``offline`` and ``params`` are the built-in proposers (no LLM), ``llm`` asks an OpenAI-compatible
endpoint through ``client``, with ``prompts``, ``extract`` and ``reflection`` as its parts.
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
    if name == "offline-params" or (name == "offline" and mode == "params"):
        from rewardgen.proposers.params import OfflineParamsProposer  # imported on use: each pulls its own deps

        return OfflineParamsProposer()
    if name == "offline":
        from rewardgen.proposers.offline import OfflineProposer

        return OfflineProposer()
    if name == "openai":
        from rewardgen.proposers.client import LLMSettings
        from rewardgen.proposers.llm import LLMProposer

        settings = LLMSettings(model=config.model, base_url=config.base_url, temperature=config.temperature,
                               timeout=config.llm_timeout)
        return LLMProposer(settings, prompts_dir=Path(config.prompts) if config.prompts else None,
                           critic=config.critic, replay=bool(config.replay), mode=mode)
    raise ValueError(f"unknown proposer {name!r}; available: offline, openai")
