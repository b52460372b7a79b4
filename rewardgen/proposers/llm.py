"""The LLM proposer: Eureka-style sampling with reflection, a critic before training, and memory.

Per generation: one prompt (system + task + reflection on what came before + human feedback),
K samples. Each sample's code is extracted, then checked in the candidate sandbox (static checks
and a short rollout) and optionally reviewed by the LLM (``critic="llm"``). A rejected sample goes
back to the LLM with the error, up to ``max_fixes`` times. Samples that never become usable are
returned with an ``error`` (recorded, not trained). A generation with no usable sample is asked
again ``generation_retries`` times. The trusted fitness's code is never in a prompt; its value is.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rewardgen.contract.syntax import parse
from rewardgen.proposers.extract import extract_code
from rewardgen.proposers.client import Answer, LLMClient, LLMSettings
from rewardgen.proposers.prompts import render, task_prompts
from rewardgen.proposers.base import CandidateRecord, Proposal, ProposalContext, Proposer
from rewardgen.proposers.reflection import component_facts, component_table


def extract_json(text: str) -> str | None:
    """The JSON object in an answer (fenced or bare), as text, or None."""
    import re

    fenced = re.search(r"```(?:json)?\s*\n(\{.*?\})\s*```", text, re.DOTALL)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if 0 <= start < end else None


def _episode_table(stats: dict) -> str:
    rows = stats.get("episodes") or []
    if not rows:
        return "(no episode finished during training)"
    out = [f"{'step':>9} {'episodes':>9} {'length':>8} {'return':>10} {'fitness':>9}"]
    for r in rows:
        out.append(f"{r['step']:>9} {r['episodes']:>9} {r['length']:>8.1f} {r['return']:>10.4g} {r['fitness']:>9.4g}")
    return "\n".join(out)


def _request_failure(record: CandidateRecord) -> bool:
    """A candidate that never existed because an LLM request failed (refused, empty, cut): not a
    reward failure, so it is not fed back to the model as one."""
    return bool((record.proposal or {}).get("failure") or (record.proposal or {}).get("fix_failure")) \
        and record.status == "proposal"


def _components(record: CandidateRecord) -> list[str]:
    return sorted((record.stats or {}).get("components", {}))


def dominant_request_failure(proposals: list[Proposal], samples: int, generation: int) -> str:
    """One line naming the most common request failure of a generation's proposals."""
    from collections import Counter

    causes = Counter((p.error or "").removeprefix("LLM request failed: ") for p in proposals if p.error)
    cause, count = causes.most_common(1)[0]
    share = f"all {samples}" if count == len(proposals) else f"{count} of {samples}"
    return f"{share} LLM samples of generation {generation} failed: {cause}"


class LLMProposer(Proposer):
    name = "openai"

    def __init__(self, settings: LLMSettings, prompts_dir: Path | None = None, critic: str = "sandbox",
                 max_fixes: int = 2, generation_retries: int = 1, replay: bool = False, mode: str = "code"):
        self.settings = settings
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

    def reflection(self, ctx: ProposalContext, compact: bool = False) -> str | None:
        ranked = ctx.ranked()
        if not ranked:
            failures = [c for gen in ctx.history for c in gen if c.status != "ok" and not _request_failure(c)]
            if not failures:
                return None
            lines = ["Every candidate so far failed. Their errors:"]
            lines += [f"- {c.ref} ({c.status}): {(c.error or '')[:300]}" for c in failures[-8:]]
            lines.append("Write a simpler reward that respects the contract exactly.")
            return "\n".join(lines)
        best = ranked[0]
        by_ref = {c.ref: c for gen in ctx.history for c in gen}
        tried = []
        for c in (c for gen in ctx.history for c in gen):
            parent = by_ref.get(c.proposal.get("parent") or "")
            if c.status == "ok" and parent is not None and parent.fitness is not None and c.fitness is not None \
                    and c.fitness <= parent.fitness:
                tried.append(f"{c.ref} (from {parent.ref}): components {', '.join(_components(c)) or '?'} -> "
                             f"fitness {c.fitness:.4g}, not better than {parent.fitness:.4g}")
        last = ctx.history[-1] if ctx.history else []
        failures = [{"ref": c.ref, "status": c.status, "error": (c.error or "")[:300]} for c in last
                    if c.status != "ok" and not _request_failure(c)]
        corr = (best.stats or {}).get("reward_fitness_correlation")
        from rewardgen.tasks.fitness import make_fitness

        if compact:  # the prompt did not fit: the facts in a few lines, no code, tables or trajectories
            return self._render(
                "reflection_compact", generation=ctx.generation - 1, best=best, threshold=ctx.task.success_threshold,
                facts=component_facts(best.stats or {})[:8],
                failures=[dict(f, error=f["error"].splitlines()[0][:120] if f["error"] else "") for f in failures[:2]])
        return self._render(
            "reflection", generation=ctx.generation - 1, best=best,
            fitness_doc=make_fitness(ctx.task.fitness, ctx.schema).doc, threshold=ctx.task.success_threshold,
            component_table=component_table(best.stats or {}), facts=component_facts(best.stats or {}),
            episode_table=_episode_table(best.stats or {}),
            correlation="not available" if corr is None else f"{corr:.2f}",
            hacking=(best.stats.get("hacking") or {}).get("message") if best.stats else None,
            trajectories=(best.stats or {}).get("trajectories"),
            archive=[] if compact else [{"ref": c.ref, "fitness": c.fitness, "components": _components(c)} for c in ranked[:3]],
            tried=[] if compact else tried[-8:], failures=failures[:4 if compact else 8])

    def feedback_text(self, ctx: ProposalContext, compact: bool = False) -> str | None:
        if not ctx.feedback:
            return None
        by_ref = {c.ref: c for gen in ctx.history for c in gen}
        refs = []
        for f in ctx.feedback:
            if f.get("kind") == "text" and f.get("candidate"):
                refs.append(f["candidate"])
            elif f.get("kind") == "preference":
                refs += [f"{f['generation']}/{f['best']}"] + ([f"{f['generation']}/{f['worst']}"] if f.get("worst") is not None else [])
        sources = {} if compact else {r: by_ref[r].source for r in dict.fromkeys(refs) if r in by_ref}
        return self._render("feedback", feedback=ctx.feedback, sources=sources)

    def messages(self, ctx: ProposalContext, compact: bool = False) -> list[dict]:
        base = task_prompts(ctx.task, self.prompts_dir, ctx.plan)
        user = [base["task"]]
        if self.mode == "params":
            from rewardgen.proposers.params import reward_template, template_prompt

            user.append(template_prompt(reward_template(ctx.task)))
        for part in (self.reflection(ctx, compact), self.feedback_text(ctx, compact)):
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
        proposals: list[Proposal] = []
        parent = ctx.ranked()[0].ref if ctx.ranked() else None
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
                proposals = list(pool.map(lambda ia: self._refine(client, ctx, messages, ia[1], ia[0], attempt, parent),
                                          enumerate(answers)))
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
        if answer.source != "content":
            notes.append(f"the code came from the model's {answer.source.replace('_', ' ')}, not its answer text")
        for fix in range(self.max_fixes + 1):
            code, problem, error = self._code_of(ctx, text)
            if code is not None:
                verdict = ctx.check(code) if ctx.check else None
                if verdict is not None and not verdict.ok:
                    problem = self._render("execution_error", stage=verdict.stage, error=verdict.error,
                                           detail="\n".join(verdict.details)[-1500:])
                    error = f"{verdict.stage}: {verdict.error}"
                else:
                    reason = self._review(client, ctx, code, i, fix) if self.critic == "llm" else None
                    if reason is None:
                        return Proposal(code, origin=origin, parent=parent, notes=notes,
                                        extra={"sample": i, "fixes": fix, "cached": answer.cached})
                    problem, error = self._render("critic_rejection", reason=reason), f"critic: {reason}"
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
        prompt = [{"role": "user", "content": self._render("critic_review", task=ctx.task, source=code)}]
        ans = client.sample(prompt, 1, tag=f"g{ctx.generation}-critic-s{i}-{fix}")[0]
        text = (ans.text or "").strip()
        if text.upper().startswith("REJECT"):
            return text.split(":", 1)[1].strip() if ":" in text else "the reviewer rejected it"
        return None
