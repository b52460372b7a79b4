"""Evolving rewards without an LLM: the genome operators both offline proposers share.

A genome is a list of genes, ``{"term": key, "weight": w, **targets}``: which terms a reward sums,
at which weights (and, in parameter mode, at which target values). A ``GeneSpace`` says what the
terms are (the term library in code mode, the reward template in parameter mode) and how a gene is
sampled, bounded and turned into a proposal; everything else is decided here, once:

- generation 0: the textbook start, then random subsets (one goal term, other goal terms with
  probability 0.3, shaping terms with 0.5);
- later generations: parents are the candidate a person preferred (ICPL-style), then the best by
  trusted fitness, never the one a person disliked; reflection on the parent's component statistics
  drops constant shaping terms, shrinks a dominating one, and leans on the goal when reward and
  fitness disagreed or the hacking alarm rang; reflection on what policies did in the trusted
  episodes raises the upright terms and the control cost when the parent's policy, or two of the
  last generation's, flipped over, and leans on the goal when the parent's stood still to the time
  limit short of success; then weights (and targets) mutate, a term may be added or removed, and a
  goal term is always kept;
- a person's text feedback becomes term edits (``FEEDBACK_RULES``);
- no genome is proposed twice in a run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from rewardgen.proposers.base import CandidateRecord, Proposal, ProposalContext
from rewardgen.proposers.reflection import behaviour_facts, component_facts
from rewardgen.store import candidate_label
from rewardgen.tasks.spec import Task

Genome = list[dict[str, Any]]

# What people say when they watch a rollout, mapped to term changes: (pattern, terms, factor, why).
# A term in ``terms`` that is missing is added when the factor raises it; "goal" means every goal term.
FEEDBACK_RULES: list[tuple[str, tuple[str, ...], float, str]] = [
    (r"fall|flip|upside|on its back|tip(s|ped)? over|crash", ("upright", "posture"), 2.0, "keep it upright"),
    (r"jitter|shak|twitch|vibrat|violent|jerk|smooth|energy|flail", ("ctrl", "joint_vel"), 3.0, "smoother motion"),
    (r"too slow|slow|faster|lazy|barely moves|stands? still|not moving", ("goal",), 2.0, "more progress"),
    (r"sideways|drift|lateral|veer", ("drift",), 2.0, "less drift"),
    (r"too fast|slower", ("goal",), 0.5, "less speed"),
]


class GeneSpace(Protocol):
    """The terms a genome may use, and how genes are made, bounded and rendered."""

    #: what ``propose`` draws its random numbers from, besides the run's seed and the generation
    salt: int

    def keys(self) -> list[str]:
        """Every term, in the order sources list them."""

    def is_goal(self, key: str) -> bool:
        """Whether the term measures the task's goal (a genome always keeps one)."""

    def new_gene(self, key: str, rng: np.random.Generator) -> dict[str, Any]:
        """A gene for ``key`` with a sampled weight (and targets)."""

    def goal_gene(self, key: str) -> dict[str, Any]:
        """The gene that restores a goal term at weight 1."""

    def clip_weight(self, key: str, weight: float) -> float:
        """``weight`` within the term's bounds."""

    def strong_weight(self, key: str) -> float:
        """The top of the range ``new_gene`` draws the term's weight from."""

    def mutate_targets(self, gene: dict[str, Any], rng: np.random.Generator) -> None:
        """Move the gene's targets a little (no-op for terms without targets)."""

    def start(self) -> tuple[Genome, list[str], str]:
        """The textbook start: genome, notes, origin."""

    def genome_of(self, record: CandidateRecord) -> Genome | None:
        """The genome a past candidate was made from (None: not one of this space's)."""

    def finish(self, genome: Genome) -> Genome:
        """The genome as it will be proposed (ordered, rounded, within bounds)."""

    def proposal(self, genome: Genome, origin: str, parent: str | None, notes: list[str]) -> Proposal:
        """The proposal (reward source and record) of a finished genome."""


def signature(genome: Genome) -> tuple:
    """What makes two genomes the same proposal: terms, log-weights to 0.1, targets to 0.01."""
    return tuple(sorted((g["term"], round(math.log(g["weight"]), 1),
                         *(round(v, 2) for n, v in sorted(g.items()) if n not in ("term", "weight")))
                        for g in genome if g["weight"] > 0))


class Edit(NamedTuple):
    """Scale the weights of ``keys`` by ``factor`` (a missing term is added when the factor raises it);
    ``strong``: and raise each to at least ``GeneSpace.strong_weight`` (a missing one is added there)."""

    why: str
    keys: list[str]
    factor: float
    strong: bool = False


def term_keys(space: GeneSpace, names: tuple[str, ...]) -> list[str]:
    """The space's terms named by ``names``: a name or its ``name_*`` family; "goal" is every goal term."""
    return [k for k in space.keys()
            if ("goal" in names and space.is_goal(k)) or any(k == n or k.startswith(n + "_") for n in names)]


def feedback_edits(feedback: list[dict], space: GeneSpace) -> list[Edit]:
    """Text feedback turned into (reason, term keys, factor) edits."""
    edits = []
    for item in feedback:
        text = (item.get("text") or "").lower() if item.get("kind") == "text" else ""
        for pattern, names, factor, why in FEEDBACK_RULES:
            if text and re.search(pattern, text):
                keys = term_keys(space, names)
                if keys:
                    edits.append(Edit(f'feedback "{item["text"][:60]}": {why}', keys, factor))
    return edits


def behaviour_edits(parent: CandidateRecord, last_generation: list[CandidateRecord], space: GeneSpace,
                    task: Task) -> list[Edit]:
    """Edits from what policies did in the trusted episodes (``reflection.behaviour_facts``).

    Flipping over is the robot's habit as much as one reward's, so two flipped policies in the last
    generation count as well as the parent's own; standing still is the parent reward's own doing.
    """
    own = behaviour_facts(parent.stats.get("trajectories"), task)
    others = {c.ref: behaviour_facts(c.stats.get("trajectories"), task)
              for c in last_generation if c.status == "ok"}
    flipped = [ref for ref, facts in others.items() if facts.flipped]
    edits: list[Edit] = []
    if own.flipped or len(flipped) >= 2:
        why = (f"its policy spent {own.upside_down:.0%} of an episode upside-down" if own.flipped
               else f"{len(flipped)} policies of the last generation flipped over ({', '.join(flipped)})")
        body = own.tilt_body or next((others[r].tilt_body for r in flipped if others[r].tilt_body), None)
        upright = term_keys(space, ("upright",))
        # the body that flipped, where the library has its term; a missing one is added
        upright = [k for k in upright if k == f"upright_{body}"] or upright
        edits.append(Edit(f"{why}: upright terms up", upright, 2.0))
        # what kept the ant on its feet in the measurements was a strong control cost, not the
        # upright term alone (docs/benchmarks-history.md, "2026-12-05, commits 7f46a96 and 02352d0")
        edits.append(Edit(f"{why}: control cost up to a strong weight", term_keys(space, ("ctrl",)), 2.0, True))
    if own.stood_still:
        why = "its policy stood still to the time limit short of success"
        present = {g["term"] for g in space.genome_of(parent) or []}
        goals = term_keys(space, ("goal",))
        edits.append(Edit(f"{why}: goal terms up", [k for k in goals if k in present] or goals[:1], 2.0))
        edits.append(Edit(f"{why}: survival and posture terms down", term_keys(space, ("alive", "posture")), 0.5))
    return [e for e in edits if e.keys]


def apply_edits(genome: Genome, notes: list[str], edits: list[Edit], space: GeneSpace,
                rng: np.random.Generator) -> tuple[Genome, list[str]]:
    """Scale the edited terms' weights; add a missing term an edit raises (see ``Edit``)."""
    for why, keys, factor, strong in edits:
        present = {g["term"]: g for g in genome}
        for key in keys:
            floor = space.strong_weight(key) if strong else 0.0
            if key in present:
                present[key]["weight"] = space.clip_weight(key, max(present[key]["weight"] * factor, floor))
            elif factor > 1.0:
                gene = space.new_gene(key, rng)
                gene["weight"] = space.clip_weight(key, max(gene["weight"], floor))
                genome.append(gene)
        notes.append(why)
    return genome, notes


def parents(ctx: ProposalContext, space: GeneSpace) -> list[CandidateRecord]:
    """The person's preferred candidate first (ICPL), then the best by fitness; never the disliked."""
    by_ref = {c.ref: c for gen in ctx.history for c in gen if c.status == "ok" and space.genome_of(c)}
    preferred, disliked = [], set()
    for f in ctx.feedback:
        if f.get("kind") == "preference":
            ranking = f.get("ranking") or [f["best"]]
            preferred += [candidate_label(f['generation'], x) for x in ranking[:1]]
            if f.get("worst") is not None:
                disliked.add(candidate_label(f['generation'], f['worst']))
    ordered = [by_ref[r] for r in reversed(preferred) if r in by_ref]
    ordered += [c for c in ctx.ranked() if space.genome_of(c)]
    out: list[CandidateRecord] = []
    for c in ordered:
        if c.ref not in disliked and c not in out:
            out.append(c)
    return out[:2]


def fresh(space: GeneSpace, rng: np.random.Generator) -> Genome:
    """A random subset of terms: one goal term, other goal terms (p 0.3), shaping terms (p 0.5)."""
    goals = [k for k in space.keys() if space.is_goal(k)]
    shaping = [k for k in space.keys() if not space.is_goal(k)]
    chosen = [goals[int(rng.integers(len(goals)))]]
    chosen += [k for k in goals if k not in chosen and rng.random() < 0.3]
    chosen += [k for k in shaping if rng.random() < 0.5]
    return [space.new_gene(k, rng) for k in chosen]


def child(parent: CandidateRecord, space: GeneSpace, rng: np.random.Generator,
          behaviour: Sequence[Edit] = ()) -> tuple[Genome, list[str]]:
    """The parent's genome after reflection on its statistics and ``behaviour`` edits, then mutated."""
    keys = set(space.keys())
    genome = [dict(g) for g in space.genome_of(parent) or [] if g["term"] in keys]
    notes: list[str] = []
    dropped: set[str] = set()
    facts = {f.name: f for f in component_facts(parent.stats)}
    for gene in list(genome):
        key, fact = gene["term"], facts.get(gene["term"])
        if fact is None:
            continue
        if fact.constant and key != "alive" and not space.is_goal(key):
            genome.remove(gene)
            dropped.add(key)
            notes.append(f"dropped {key}: constant during training")
        elif fact.dominant and not space.is_goal(key):
            gene["weight"] *= 0.3
            notes.append(f"scaled {key} down: {fact.share:.0%} of the reward's magnitude")
    corr = parent.stats.get("reward_fitness_correlation")
    hacking = parent.stats.get("hacking")
    if (corr is not None and corr < 0.0) or hacking:
        for gene in genome:
            gene["weight"] *= 2.0 if space.is_goal(gene["term"]) else 0.5
        why = f"r={corr:.2f}" if corr is not None and corr < 0.0 else "reward-hacking alarm"
        notes.append(f"reward and fitness disagreed ({why}): goal terms up, shaping down")
    kept = [e._replace(keys=[k for k in e.keys if k not in dropped]) for e in behaviour]
    genome, notes = apply_edits(genome, notes, kept, space, rng)
    for gene in genome:
        gene["weight"] = space.clip_weight(gene["term"], gene["weight"] * math.exp(rng.normal(0.0, 0.4)))
        space.mutate_targets(gene, rng)
    present = {g["term"] for g in genome}
    absent = [k for k in space.keys() if k not in present | dropped]
    if absent and rng.random() < 0.4:
        key = absent[int(rng.integers(len(absent)))]
        genome.append(space.new_gene(key, rng))
        notes.append(f"added {key}")
    removable = [g for g in genome if not space.is_goal(g["term"])]
    if removable and rng.random() < 0.25:
        g = removable[int(rng.integers(len(removable)))]
        genome.remove(g)
        notes.append(f"removed {g['term']}")
    if not any(space.is_goal(g["term"]) for g in genome):
        goal = next(k for k in space.keys() if space.is_goal(k))
        genome.insert(0, space.goal_gene(goal))
        notes.append(f"restored goal term {goal}")
    return genome, notes


def propose(ctx: ProposalContext, space: GeneSpace, fresh_origin: str) -> list[Proposal]:
    """``ctx.samples`` proposals for generation ``ctx.generation``, none proposed before in the run."""
    rng = np.random.default_rng([ctx.seed, ctx.generation, space.salt])
    chosen = parents(ctx, space)
    edits = feedback_edits(ctx.feedback, space)
    last = ctx.history[-1] if ctx.history else []
    behaviour = {p.ref: behaviour_edits(p, last, space, ctx.task) for p in chosen}
    seen = {signature(g) for gen in ctx.history for c in gen if (g := space.genome_of(c))}
    proposals = []
    for i in range(ctx.samples):
        for _attempt in range(10):
            if chosen:
                parent = chosen[i % len(chosen)]
                genome, notes = child(parent, space, rng, behaviour[parent.ref])
                genome, notes = apply_edits(genome, notes, edits, space, rng)
                origin, parent_ref = f"mutation of {parent.ref}", parent.ref
            elif i == 0 and ctx.generation == 0:
                genome, notes, origin = space.start()
                parent_ref = None
            else:
                genome, notes, origin, parent_ref = fresh(space, rng), [], fresh_origin, None
            genome = space.finish(genome)
            if signature(genome) not in seen:
                break
        seen.add(signature(genome))
        proposals.append(space.proposal(genome, origin, parent_ref, notes))
    return proposals
