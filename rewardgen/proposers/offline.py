"""The offline proposer: real rewards evolved without an LLM, in code mode or parameter mode.

Code mode (``offline``) writes reward code from the term library (``rewardgen.proposers.library``);
parameter mode (``offline-params``, or ``offline`` with ``--mode params``) fills in the numbers of the
task's reward template (``rewardgen.proposers.params``). Both evolve the same way, with the genome
operators of ``rewardgen.proposers.genome``: the textbook start, random subsets, then children of the
preferred or best candidates after reflection on their component statistics, text feedback and the
hacking alarm.
"""

from __future__ import annotations

from rewardgen.proposers import genome
from rewardgen.proposers.base import Proposal, ProposalContext, Proposer
from rewardgen.proposers.library import FRESH_ORIGIN as LIBRARY_ORIGIN
from rewardgen.proposers.library import LibrarySpace
from rewardgen.proposers.params import FRESH_ORIGIN as TEMPLATE_ORIGIN
from rewardgen.proposers.params import TemplateSpace


class OfflineProposer(Proposer):
    """Evolves rewards without an LLM. :param mode: ``code`` (term library) or ``params`` (reward template)."""

    def __init__(self, mode: str = "code"):
        if mode not in ("code", "params"):
            raise ValueError(f"mode must be code or params, got {mode!r}")
        self.mode = mode
        self.name = "offline" if mode == "code" else "offline-params"
        self.label = ("offline proposer (term library, no LLM)" if mode == "code"
                      else "offline parameter proposer (reward template, no LLM)")

    def propose(self, ctx: ProposalContext) -> list[Proposal]:
        if self.mode == "code":
            return genome.propose(ctx, LibrarySpace(ctx.task), LIBRARY_ORIGIN)
        return genome.propose(ctx, TemplateSpace(ctx.task), TEMPLATE_ORIGIN)
