"""Every honest reward the repository holds, for the tests that must keep accepting them.

Gathered from where rewards come from, never written for the test: the offline proposer's term library
(every term of every task at once) and its params templates, the sparse baselines, the reward in the
system prompt, the jail's warm-up reward, the rewards of the docs and README, the LLM transcripts in
``/work/shared/llm-transcripts`` (when present), the legitimate files of the hostile corpus
(``legit_*``), the debug rewards, and the reward strings of the test modules (a string constant with
``def compute_reward`` that parses and holds none of the fragments of the rewards the tests refuse
on purpose).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
TRANSCRIPTS = Path("/work/shared/llm-transcripts")
DOC_TRANSCRIPTS = ROOT / "docs" / "llm-transcripts"  # the answers docs/llm.md measured, in the repository
_FENCE = re.compile(r"^```(?:python|py)\n(.*?)^```", re.S | re.M)


def _library() -> list[tuple[str, str]]:
    from rewardgen.proposers.library import render_source, term_library
    from rewardgen.proposers.params import TemplateSpace
    from rewardgen.tasks.baselines import sparse_reward_source
    from rewardgen.tasks.spec import get_task, list_tasks

    out = []
    for task in list_tasks():
        task = get_task(task.id)
        genome = [{"term": key, "weight": 1.0} for key in term_library(task, task.schema)]
        out.append((f"library:{task.id}", render_source(task, genome, "every term")))
        space = TemplateSpace(task)
        genome, _, _ = space.start()
        out.append((f"params:{task.id}", space.proposal(space.finish(genome), "start", None, []).source))
        out.append((f"sparse:{task.id}", sparse_reward_source(task)))
    return out


def _prompt_and_warm_up() -> list[tuple[str, str]]:
    from rewardgen.sandbox.jail import _WARM_UP_REWARD

    system = (ROOT / "prompts" / "system.j2").read_text()
    out = [("jail warm-up", _WARM_UP_REWARD)]
    example = _first_reward(system)
    if example:
        out.append(("prompts/system.j2", example))
    return out


def _first_reward(text: str) -> str | None:
    """The reward example in a prompt template: from its first ``import`` to the end of ``compute_reward``."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith(("import torch", "def compute_reward"))),
                 None)
    if start is None:
        return None
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = [ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[start:]]
    for end in range(len(body), 0, -1):
        candidate = "\n".join(body[:end])
        try:
            ast.parse(candidate)
        except SyntaxError:
            continue
        if "def compute_reward" in candidate:
            return candidate + "\n"
    return None


def _markdown() -> list[tuple[str, str]]:
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(_FENCE.findall(path.read_text())):
            if "def compute_reward" in block:
                try:
                    ast.parse(block)
                except SyntaxError:
                    continue
                out.append((f"{path.name}#{i}", block))
    return out


def _transcripts() -> list[tuple[str, str]]:
    from rewardgen.proposers.extract import extract_code

    out = []
    for root in (TRANSCRIPTS, DOC_TRANSCRIPTS):
        for path in sorted(root.glob("*/resp-*.md")) if root.is_dir() else []:
            code = extract_code(path.read_text())
            if code:
                out.append((f"transcript:{root.parent.name}/{path.parent.name}/{path.name}", code))
    return out


def _header(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# (attack|expect|cause|flags): ?(.*)$", text, flags=re.M))


def _files() -> list[tuple[str, str]]:
    out = [(f"debug_rewards/{p.name}", p.read_text()) for p in sorted((TESTS / "debug_rewards").glob("*.py"))]
    for p in sorted((TESTS / "hostile").glob("legit_*.py")):
        out.append((f"hostile/{p.name}", p.read_text()))
    return out


#: reward strings in the tests that are refused on purpose (they test refusals or failures), by a
#: fragment of their text
_MEANT_TO_FAIL = ("open(", "import os", "__", "getattr", "eval(", "exec(", "torch.save", "torch.load",
                  "import subprocess", "globals()", ".format(", "while True", "import socket", "import sys")


def _test_strings() -> list[tuple[str, str]]:
    """Reward sources written as string constants in the test modules (not the hostile corpus)."""
    out = []
    for path in [*sorted(TESTS.glob("test_*.py")), TESTS / "conftest.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "def compute_reward" in node.value:
                text = node.value
                if any(bad in text for bad in _MEANT_TO_FAIL) or ("{" in text and "}}" in text):
                    continue
                try:
                    ast.parse(text)
                except SyntaxError:
                    continue
                out.append((f"{path.name}:{node.lineno}", text))
    return out


def honest_rewards() -> list[tuple[str, str]]:
    """``(where it came from, source)`` of every honest reward found."""
    return _library() + _prompt_and_warm_up() + _markdown() + _transcripts() + _files() + _test_strings()
