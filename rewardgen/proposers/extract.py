"""Pull reward code out of an LLM answer, however it was formatted.

Real answers put code in one fenced block, in several (helpers in one, ``compute_reward`` in
another), in no fence at all, with prose before and after. The rule here never drops a helper:
every fenced block that holds code the reward needs is kept whole, in order; unfenced code is cut
only at prose lines, never inside a function.
"""

from __future__ import annotations

import ast
import re

from rewardgen.contract.syntax import parse

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(import |from \S+ import |def |class |@|[A-Za-z_][A-Za-z_0-9]*\s*(:[^=]*)?=[^=])")
_PROSE_LANGS = {"text", "txt", "markdown", "md", "json", "yaml", "bash", "sh", "console", "output"}


_THINK = re.compile(r"<(think|thinking|reasoning)>(.*?)(?:</\1>|\Z)", re.DOTALL | re.IGNORECASE)


def split_thinking(text: str | None) -> tuple[str, str]:
    """(answer without its ``<think>`` blocks, the thinking). A lone ``</think>`` (servers that
    strip the opening tag) ends the thinking too."""
    if not text:
        return "", ""
    thinking = [m.group(2) for m in _THINK.finditer(text)]
    answer = _THINK.sub("", text)
    close = re.search(r"</(think|thinking|reasoning)>", answer, re.IGNORECASE)
    if close:
        thinking.append(answer[:close.start()])
        answer = answer[close.end():]
    return answer.strip(), "\n".join(thinking).strip()



def _defined_names(code: str) -> set[str]:
    try:
        tree = parse(code)
    except SyntaxError:
        return set(re.findall(r"^def ([A-Za-z_]\w*)", code, re.MULTILINE))
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return out


def _used_names(code: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", code))


def _from_fences(text: str) -> str | None:
    blocks = [(lang.lower(), body.strip("\n")) for lang, body in _FENCE.findall(text)]
    blocks = [(lang, body) for lang, body in blocks if lang not in _PROSE_LANGS and body.strip()]
    if not blocks:
        return None
    mains = [i for i, (_, body) in enumerate(blocks) if re.search(r"^def compute_reward\s*\(", body, re.MULTILINE)]
    if not mains:
        return None
    main = mains[-1]  # a later block is usually the corrected version
    keep = {main}
    needed = _used_names(blocks[main][1])
    changed = True
    while changed:  # pull in blocks defining helpers the kept code uses (transitively)
        changed = False
        for i, (_, body) in enumerate(blocks):
            if i in keep or i in mains:
                continue
            defined = _defined_names(body)
            imports_only = all(line.startswith(("import ", "from ")) or not line.strip() for line in body.splitlines())
            if (defined & needed) or imports_only:
                keep.add(i)
                needed |= _used_names(body)
                changed = True
    return "\n\n".join(blocks[i][1] for i in sorted(keep)).strip() + "\n"


def _is_code_line(line: str) -> bool:
    return (not line.strip() or line[0] in " \t#)]}" or bool(_CODE_START.match(line))
            or line.startswith(("return", "if ", "elif ", "else", "for ", "while ", "with ", "try", "except", "finally")))


def _from_plain(text: str) -> str | None:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None or not re.search(r"^def compute_reward\s*\(", text, re.MULTILINE):
        return None
    lines = [line for line in lines[start:] if _is_code_line(line)]  # prose at column 0 is dropped
    start, end = 0, len(lines)
    while end > start:  # drop trailing leftovers until the rest parses
        code = "\n".join(lines[start:end]).rstrip()
        try:
            parse(code)
            return code + "\n"
        except SyntaxError:
            end -= 1
    return "\n".join(lines[start:]).rstrip() + "\n"  # unparseable: let the critic report where


def extract_code(text: str | None) -> str | None:
    """The reward source in ``text``, or None when it holds no ``compute_reward`` definition.

    ``<think>`` blocks are left out (their drafts and decoys are not the answer); code only inside
    the thinking is used when the answer itself has none."""
    if not text or not text.strip():
        return None
    answer, thinking = split_thinking(text)
    for part in (answer, thinking):
        if part:
            code = _from_fences(part) or _from_plain(part)
            if code:
                return code
    return None
