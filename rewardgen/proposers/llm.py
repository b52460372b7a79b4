"""The LLM proposer: Eureka-style sampling with reflection, a critic before training, and memory.

Per generation: one prompt (system + task + reflection on what came before + human feedback),
K samples. Each sample's code is extracted, then checked in the candidate sandbox (static checks
and a short rollout) and optionally reviewed by the LLM (``critic="llm"``). A rejected sample goes
back to the LLM with the error, up to ``max_fixes`` times. Samples that never become usable are
returned with an ``error`` (recorded, not trained). A generation with no usable sample is asked
again ``generation_retries`` times. The trusted fitness's code is never in a prompt; its value is.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from rewardgen.contract.syntax import parse
from rewardgen.proposers.base import Proposal, ProposalContext, Proposer
from rewardgen.proposers.client import Answer, LLMClient, LLMSettings
from rewardgen.proposers.extract import extract_code
from rewardgen.proposers.prompts import render, task_prompts
from rewardgen.proposers.reflection import component_facts
from rewardgen.safetext import for_llm, llm_name
from rewardgen.store import candidate_label

#: the default ``prompt_chars``: about 15k tokens, which leaves room for the answer in a 32k context
DEFAULT_PROMPT_CHARS = 60_000


def extract_json(text: str) -> str | None:
    """The JSON object in an answer (fenced or bare), as text, or None."""
    import re

    fenced = re.search(r"```(?:json)?\s*\n(\{.*?\})\s*```", text, re.DOTALL)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if 0 <= start < end else None


_BASED_ON = re.compile(r"^\W*(?:based on|parent)\W*:?\W*(g\d+c\d+|\d+/\d+|none|nothing)\b", re.IGNORECASE | re.MULTILINE)


def based_on(text: str | None, ctx: ProposalContext, default: str | None) -> str | None:
    """The parent an answer names on its ``Based on: g1c2`` line (a candidate that trained), None for
    ``Based on: none``, else ``default`` (the best so far)."""
    from rewardgen.proposers.history import find

    m = _BASED_ON.search((text or "")[:2000])
    if not m:
        return default
    if m.group(1).lower() in ("none", "nothing"):
        return None
    record = find(ctx.history, m.group(1))
    return record.ref if record is not None and record.status == "ok" else default


def dominant_request_failure(proposals: list[Proposal], samples: int, generation: int) -> str:
    """One line for a generation whose LLM requests failed: how many samples failed (all of them, counted
    by sample, not by wording) and the most common cause, with each kind's count when they differ."""
    from collections import Counter

    failed = [p for p in proposals if p.error]
    kinds = Counter(p.extra.get("failure") or p.extra.get("fix_failure") or "error" for p in failed)
    kind = kinds.most_common(1)[0][0]
    cause = next((p.error or "").removeprefix("LLM request failed: ") for p in failed
                 if (p.extra.get("failure") or p.extra.get("fix_failure") or "error") == kind)
    share = f"all {samples}" if len(failed) >= samples else f"{len(failed)} of {samples}"
    mixed = "" if len(kinds) == 1 else " (" + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + ")"
    return f"{share} LLM samples of generation {generation} failed{mixed}: {cause}"


class LLMProposer(Proposer):
    name = "openai"

    def __init__(self, settings: LLMSettings, prompts_dir: Path | None = None, critic: str = "sandbox",
                 max_fixes: int = 2, generation_retries: int = 1, replay: bool = False, mode: str = "code",
                 prompt_chars: int = DEFAULT_PROMPT_CHARS):
        """:param prompt_chars: the most characters a generation's request should have (system and user
            messages): older generations are compressed to fit; the newest is never cut."""
        self.settings = settings
        self.prompt_chars = int(prompt_chars)
        self.prompts_dir = prompts_dir
        self.critic = critic
        self.max_fixes = max_fixes
        self.generation_retries = generation_retries
        self.replay = replay
        self.mode = mode
        self.usage: dict = {}
        self.failure: str | None = None  # why a generation got nothing because of the endpoint (one line)
        self.adaptations: list[str] = []
        where = settings.base_url or "the OpenAI API"
        self.label = f"LLM proposer ({settings.model} at {where}{', replaying recorded answers' if replay else ''})"

    # ----- prompts
    def _render(self, name: str, **ctx) -> str:
        return render(name, self.prompts_dir, **ctx)

    def reflection(self, ctx: ProposalContext, compact: bool = False, room: int | None = None) -> str | None:
        """What came of the earlier generations (``rewardgen.proposers.history``): the best so far with
        its code, every candidate of the newest generation in full, older ones compressed until the text
        fits ``room`` characters (never the newest). None before the first generation."""
        from rewardgen.proposers import history as h
        from rewardgen.proposers.taskfacts import seed_luck
        from rewardgen.sim.termination import termination_of
        from rewardgen.tasks.fitness import make_fitness

        records = [[c for c in gen if not h.request_failure(c)] for gen in ctx.history]
        ranked = ctx.ranked()
        if not ranked:
            failures = [c for gen in records for c in gen if c.status != "ok"]
            if not failures:
                return None
            lines = ["Every candidate so far failed. Their errors:"]
            lines += [f"- {c.label} ({c.status}):\n{for_llm(c.error or '', limit=400)}" for c in failures[-8:]]
            lines.append("Write a simpler reward that respects the contract exactly.")
            return "\n".join(lines)
        everyone = [c for gen in records for c in gen]
        best = h.leader(everyone) or ranked[0]
        budget = ctx.plan.steps if ctx.plan else None
        ends_early = termination_of(ctx.task).ends_early
        parent_of = lambda c: h.find(ctx.history, (c.proposal or {}).get("parent"))  # noqa: E731 - a one-line local helper
        last = len(ctx.history) - 1
        newest = records[-1] if records else []
        best_header = h.header(best, parent_of(best), budget).split(": ", 1)[1]
        best_header = f"{best.label}, {best_header.split('; compared', 1)[0]}"
        if compact:  # the prompt did not fit: the facts in a few lines, no code, tables or trajectories
            facts = [replace(f, name=llm_name(f.name, f"component_{i}"))
                     for i, f in enumerate(component_facts(best.stats or {})[:8])]
            return self._render("reflection_compact", generation=last, best={"header": best_header}, facts=facts,
                                ends_early=ends_early, params_mode=self.mode == "params",
                                newest=[h.header(c, parent_of(c), budget, seed_luck(ctx.task)) for c in newest])
        detail = None
        if best.generation != last:  # described in full with its own generation: its facts again here
            after_header = h.describe_candidate(best, parent_of(best), ctx.task, ends_early, budget,
                                                show_change=False).split("\n", 1)[1:]
            detail = after_header[0] if after_header else None
        entries = [h.describe_candidate(c, parent_of(c), ctx.task, ends_early, budget) for c in newest]
        skipped = sum(1 for c in (ctx.history[-1] if ctx.history else []) if h.request_failure(c))
        # older generations: 0 with their whole changes, 1 with their short changes only (a long one is left
        # out whole, never cut), both with each candidate's trusted-episode line; 2 one line each, 3 one
        # line in all
        levels = [0] * last
        changes: dict[int, bool | str] = {0: True, 1: "short", 2: False}
        first_rung = min((m.steps for c in everyone for m in h.measures(c)[:1]), default=None)
        flip = h.rank_flip(everyone)

        def older_blocks() -> list[str]:
            out = []
            for g, level in enumerate(levels):
                gen = records[g]
                if level == 3:
                    out.append(f"Generation {g}: {h.generation_summary(gen)}.")
                    continue
                out.append(f"Generation {g}:")
                for c in gen:
                    line = h.describe_older(c, parent_of(c), budget, with_change=changes[level] if c is not best
                                            else False, task=ctx.task if level < 2 and c is not best else None)
                    out.append(line + (" (the best so far: its code is above)" if c is best else ""))
            return out

        best_fitness = h.measure_at(best)  # its fitness: its last measurement
        # everything but the older generations is the same however far they are compressed: computed once
        fixed = dict(
            generation=last, fitness_doc=make_fitness(ctx.task.fitness, ctx.schema).doc,
            threshold=ctx.task.success_threshold, ends_early=ends_early,
            best={"label": best.label, "header": best_header, "code": h.code_block(best.source),
                  "detail": detail, "retrained": h.retrained_lines(best, everyone),
                  "steps": h.steps_text(best_fitness.steps) if best_fitness and best_fitness.steps else None,
                  "success": best_fitness is not None and best_fitness.fitness >= ctx.task.success_threshold,
                  "peak_success": max((m.fitness for m in h.measures(best)), default=-math.inf)
                  >= ctx.task.success_threshold},
            leaders=h.budget_leaders(everyone),
            noise=h.noise_lines(everyone, ctx.plan.eval_episodes if ctx.plan else None,
                                reference=bool(ctx.task.reference)),
            first_rung=h.steps_text(first_rung) if first_rung is not None and len(
                {m.steps for c in everyone for m in h.measures(c)}) > 1 else None,
            band=h.rung_band(everyone, first_rung) if first_rung is not None else None,
            flip=flip, newest=entries, skipped=skipped, params_mode=self.mode == "params",
            samples=ctx.samples, total=ctx.plan.generations if ctx.plan else None,
            confirm=ctx.plan.confirm_seeds if ctx.plan else 0, confirm_top=ctx.plan.confirm_top if ctx.plan else 0,
            results=sum(1 for c in everyone if c.status == "ok" and h.measures(c)))

        def text() -> str:
            return self._render("reflection", older=older_blocks(), **fixed)

        out = text()
        while room is not None and len(out) > room and any(level < 3 for level in levels):
            g = next(i for i, level in enumerate(levels) if level < 3)  # the oldest first
            levels[g] += 1
            out = text()
        return out

    def feedback_text(self, ctx: ProposalContext, compact: bool = False) -> str | None:
        if not ctx.feedback:
            return None
        from rewardgen.proposers.history import find

        refs = []
        for f in ctx.feedback:
            if f.get("kind") == "text" and f.get("candidate"):
                refs.append(f["candidate"])
            elif f.get("kind") == "preference":
                refs.append(candidate_label(f['generation'], f['best']))
                if f.get("worst") is not None:
                    refs.append(candidate_label(f['generation'], f['worst']))
        from rewardgen.proposers.history import code_block

        named = [find(ctx.history, r) for r in refs]  # "g0c2", or "0/2" as older feedback files wrote it
        sources = {} if compact else {c.label: code_block(c.source) for c in named if c is not None and c.source.strip()}
        return self._render("feedback", feedback=ctx.feedback, sources=sources)

    def messages(self, ctx: ProposalContext, compact: bool = False) -> list[dict]:
        """The request: the system prompt, then the task, what came of earlier generations (kept within
        ``prompt_chars`` in all by compressing older generations) and people's feedback."""
        base = task_prompts(ctx.task, self.prompts_dir, ctx.plan)
        user = [base["task"]]
        if self.mode == "params":
            from rewardgen.proposers.params import reward_template, template_prompt

            user.append(template_prompt(reward_template(ctx.task)))
        feedback = self.feedback_text(ctx, compact)
        used = len(base["system"]) + sum(len(u) + 2 for u in user) + len(feedback or "")
        for part in (self.reflection(ctx, compact, room=max(0, self.prompt_chars - used)), feedback):
            if part:
                user.append(part)
        return [{"role": "system", "content": base["system"]}, {"role": "user", "content": "\n\n".join(user)}]

    # ----- sampling
    def _usable(self, text: str) -> bool:
        """Whether an answer holds what is asked for: reward code that parses (or a JSON object)."""
        import json

        if self.mode == "params":
            blob = extract_json(text or "")
            try:
                return isinstance(json.loads(blob), dict) if blob else False
            except ValueError:
                return False
        code = extract_code(text)
        if code is None:
            return False
        try:
            parse(code)
            return True
        except SyntaxError:
            return False

    def _answered(self, text: str) -> bool:
        """Whether an answer holds code (or JSON) at all, even broken: then it is the answer to fix."""
        return (extract_json(text or "") if self.mode == "params" else extract_code(text)) is not None

    def propose(self, ctx: ProposalContext) -> list[Proposal]:
        event = ctx.event or (lambda kind, **data: None)
        client = LLMClient(self.settings, cache_dir=(ctx.run_dir or Path(".")) / "llm-cache",
                           record_dir=ctx.record_dir, replay=self.replay,
                           notify=lambda message: event("warning", message=f"LLM: {message}"),
                           on_status=lambda flying, done, failed: event("llm_status", generation=ctx.generation,
                                                                        in_flight=flying, answered=done, failed=failed))
        from rewardgen.proposers.history import leader, request_failure

        proposals: list[Proposal] = []
        # the default parent is the best so far as the reflection names it (like with like)
        first = leader([c for gen in ctx.history for c in gen if not request_failure(c)])
        parent = first.ref if first is not None else (ctx.ranked()[0].ref if ctx.ranked() else None)
        self.failure = None
        for attempt in range(1 + self.generation_retries):
            compact = client.adapt.compact
            messages = self.messages(ctx, compact)
            tag = f"g{ctx.generation}-a{attempt}" + ("-compact" if compact else "")
            answers = client.sample(messages, ctx.samples, tag=tag, usable=self._usable, answered=self._answered)
            fresh = [a for a in answers if not a.cached]
            if fresh and all(a.kind == "context_length" for a in fresh) and not compact:
                full = sum(len(m["content"]) for m in messages)
                messages = self.messages(ctx, compact=True)
                client.adapted(f"the prompt ({full} characters) is longer than the model's context: using the compact "
                               f"prompt ({sum(len(m['content']) for m in messages)} characters: task and contract, "
                               f"no code, tables or trajectories) for the rest of the run", compact=True)
                answers = client.sample(messages, ctx.samples, tag=f"g{ctx.generation}-a{attempt}-compact",
                                        usable=self._usable, answered=self._answered)
                if all(a.kind == "context_length" for a in answers if not a.cached):
                    answers = [a if a.kind != "context_length" else Answer(
                        None, f"{a.error}; even the compact prompt ({sum(len(m['content']) for m in messages)} "
                              "characters) does not fit: raise the server's context size (llama.cpp --ctx-size, "
                              "vLLM --max-model-len, Ollama num_ctx) or use a model with a longer context",
                        "context_length", fatal=True) for a in answers]
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [pool.submit(self._refine, client, ctx, messages, answer, i, attempt, parent)
                           for i, answer in enumerate(answers)]
                proposals = [f.result() for f in futures]
            if any(p.error is None for p in proposals) or client.fatal is not None \
                    or any(a.fatal for a in answers):
                break
        self.usage = client.usage.as_dict()
        self.adaptations = list(client.adapt.notes)
        if not any(p.error is None for p in proposals) and all(p.extra.get("failure") for p in proposals):
            self.failure = dominant_request_failure(proposals, ctx.samples, ctx.generation)
        return proposals

    def _refine(self, client: LLMClient, ctx: ProposalContext, messages: list[dict], answer: Answer, i: int,
                attempt: int, parent: str | None) -> Proposal:
        origin = f"LLM sample {i}" + (f" (generation retry {attempt})" if attempt else "")
        if answer.text is None:
            return Proposal("", origin=origin, parent=parent, error=f"LLM request failed: {answer.error}",
                            extra={"sample": i, "failure": answer.kind})
        conversation, text, code, notes = list(messages), answer.text, None, []
        parent = based_on(answer.text, ctx, parent)
        if answer.source != "content":
            notes.append(f"the code came from the model's {answer.source.replace('_', ' ')}, not its answer text")
        for fix in range(self.max_fixes + 1):
            code, problem, error = self._code_of(ctx, text)
            if code is not None:
                verdict = ctx.check(code) if ctx.check else None
                if verdict is not None and not verdict.ok:
                    details = "\n".join(verdict.details)
                    report = f"{verdict.error}\n{details[-1500:]}" if details else verdict.error
                    problem = self._render("execution_error", stage=verdict.stage, report=for_llm(report, limit=2000))
                    error = f"{verdict.stage}: {verdict.error}"
                else:
                    reason = self._review(client, ctx, code, i, fix) if self.critic == "llm" else None
                    if reason is None:
                        return Proposal(code, origin=origin, parent=parent, notes=notes,
                                        extra={"sample": i, "fixes": fix, "cached": answer.cached})
                    problem = self._render("critic_rejection", reason=for_llm(reason, limit=600,
                                                                               what="the reviewer's objection"))
                    error = f"critic: {reason}"
            notes.append(f"round {fix}: {error}")
            if fix == self.max_fixes:
                break
            # the answer goes back without its thinking (split_thinking removed it)
            conversation += [{"role": "assistant", "content": text}, {"role": "user", "content": problem}]
            fixed = client.sample(conversation, 1, tag=f"g{ctx.generation}-a{attempt}-s{i}-fix{fix}",
                                  usable=self._usable, answered=self._answered)[0]
            if fixed.text is None:
                return Proposal(code or "", origin=origin, parent=parent, notes=notes,
                                error=f"LLM request for a fix failed: {fixed.error}",
                                extra={"sample": i, "fix_failure": fixed.kind})
            text = fixed.text
        return Proposal(code or "", origin=origin, parent=parent, notes=notes,
                        error=f"still unusable after {self.max_fixes} fix(es): {error}", extra={"sample": i})

    def _code_of(self, ctx: ProposalContext, text: str) -> tuple[str | None, str, str]:
        """(reward source, follow-up prompt, error) from an answer: code, or template parameters."""
        if self.mode != "params":
            code = extract_code(text)
            return code, self._render("no_code"), "the answer contained no compute_reward(s)"
        from rewardgen.proposers.params import ParamsError, render_params, reward_template, validate_params

        template = reward_template(ctx.task)
        blob = extract_json(text)
        try:
            params = validate_params(template, blob if blob is not None else text)
        except ParamsError as exc:
            message = f"your parameters were rejected: {exc}"
            return None, message + "\nAnswer again with only the corrected JSON object.", str(exc).splitlines()[0]
        return render_params(template, params), "", ""

    def _review(self, client: LLMClient, ctx: ProposalContext, code: str, i: int, fix: int) -> str | None:
        """The LLM critic's objection, or None when it approves (or cannot answer)."""
        from rewardgen.proposers.history import code_block

        prompt = [{"role": "user", "content": self._render("critic_review", task=ctx.task, code=code_block(code))}]
        ans = client.sample(prompt, 1, tag=f"g{ctx.generation}-critic-s{i}-{fix}")[0]
        text = (ans.text or "").strip()
        if text.upper().startswith("REJECT"):
            return text.split(":", 1)[1].strip() if ":" in text else "the reviewer rejected it"
        return None
