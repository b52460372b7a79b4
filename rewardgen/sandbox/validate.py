"""Static validation of candidate reward source (first sandbox layer; see docs/sandbox.md).

The orchestrator runs this before it spawns a worker, and the worker runs it again before it
loads the code. It only parses (``ast.parse``); it never executes the candidate.

API: ``validate_source(source) -> list[Issue]`` (empty means accepted), and ``ensure_valid(source)``
which raises ``ValidationError`` carrying the issues. Every ``Issue`` has a 1-based ``line`` (0 when
the problem is the whole file) and a one-line ``message``.

The rules are an allowlist (``rewardgen.sandbox.allowed``): a reward needs arithmetic on tensors, not
reflection, files, processes or native code. An attribute is accepted only when its name is listed
there, whatever object it is read on (name-based rules instead of type inference, so aliasing,
``t = torch; t.save(...)``, does not help), with three refinements:

- torch's namespaces (``nn``, ``functional``, ``linalg``, ``special``) only on a name known to be torch
  or ``torch.nn`` (an import, or a module-level assignment of one), so ``torch.functional`` or a real
  submodule reached another way is refused;
- a reward may define names of its own (its classes' methods, the attributes it stores: ``self.scale``)
  and read them on any object; none may be a name that real objects carry (``os``, ``torch``, a
  torch function's name for a stored one), so on a module or tensor such a name is simply absent and
  a method called with ``self`` bound to a module reaches and patches nothing;
- names built at runtime are refused: ``getattr``/``setattr``/``vars``, ``hasattr`` with a name that is
  not a listed string literal, ``str.format`` fields that read attributes, literals with ``__``.

It is not the boundary in rewardgen (the jail is), but it is the only guard of an exported reward.
"""

from __future__ import annotations

import ast
import string
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from rewardgen.contract.syntax import parse
from rewardgen.sandbox import allowed

MAX_SOURCE_CHARS = 100_000
ALLOWED_MODULES = frozenset({"torch", "math"})

# torch sub-modules a reward may import or reach (``torch.<x>``): anything else under torch that is
# a module is refused when imported. Attribute access is governed by BANNED_ATTRIBUTES below.
BANNED_TORCH_PATHS = frozenset({
    "torch.save", "torch.load", "torch.ops", "torch.classes", "torch.utils", "torch.hub", "torch.from_file",
    "torch.jit", "torch.cuda", "torch.multiprocessing", "torch.distributed", "torch.library", "torch.backends",
    "torch.package", "torch.compile", "torch.compiler", "torch.fx", "torch.export", "torch.onnx",
    "torch.profiler", "torch.serialization", "torch.overrides", "torch.random", "torch.storage",
    "torch.autograd.profiler", "torch.autograd.graph", "torch.cpu", "torch.mps", "torch.xpu", "torch.mtia",
    "torch.accelerator", "torch.monitor", "torch.futures", "torch.testing", "torch.config",
    "torch.manual_seed", "torch.seed", "torch.set_num_threads", "torch.set_default_dtype",
    "torch.set_default_device", "torch.set_default_tensor_type", "torch.set_grad_enabled",
    "torch.set_printoptions", "torch.set_flush_denormal", "torch.use_deterministic_algorithms",
    "torch.set_rng_state", "torch.set_num_interop_threads", "torch.set_anomaly_enabled",
    "torch.set_float32_matmul_precision", "torch.set_warn_always", "torch.set_deterministic_debug_mode",
    "torch.nn.Module",
})

# Builtins that execute code, reach objects by name, touch files or the terminal, or end the process:
# refused by name here, and absent from the builtins the reward runs with (``sandbox.guard.safe_builtins``,
# which puts a gated ``__import__`` back).
BANNED_BUILTINS = frozenset({
    "exec", "eval", "compile", "open", "globals", "locals", "vars", "getattr", "setattr", "delattr",
    "__import__", "breakpoint", "input", "help", "exit", "quit", "memoryview", "copyright", "credits",
    "license", "__loader__", "__spec__",
})
# Names a reward may not write at all: the banned builtins plus reflection gateways. The latter are
# refused here only; the reward's builtins at run time still hold them.
BANNED_NAMES = BANNED_BUILTINS | frozenset({
    "dir", "classmethod", "staticmethod", "property", "super", "object", "type", "__builtins__",
})

# Attribute names refused on any object. Grouped by why.
BANNED_ATTRIBUTES = frozenset({
    # stdlib modules re-exported by torch (torch.os, torch.sys, ...) and their dangerous members
    "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "pickle", "io", "shutil", "socket",
    "inspect", "gc", "types", "marshal", "threading", "multiprocessing", "signal", "pathlib", "tempfile",
    "platform", "glob", "functools", "warnings", "weakref", "copyreg", "environ", "system", "popen",
    "spawnl", "spawnv", "execv", "execve", "execl", "fork", "kill", "killpg", "unlink", "rmdir",
    "rename", "mkdir", "makedirs", "chmod", "chown", "symlink", "putenv", "getenv",
    # file, serialisation and native-code entry points of torch / numpy
    "save", "load", "from_file", "ops", "classes", "hub", "jit", "cuda", "utils", "cpp_extension",
    "distributed", "library", "backends", "package", "compile", "compiler", "fx",
    "export", "onnx", "profiler", "serialization", "overrides", "storage", "untyped_storage",
    "share_memory_", "numpy", "tofile", "tobytes", "dump", "dumps", "loads", "from_dlpack", "to_dlpack",
    "set_", "pin_memory", "record_stream", "set_rng_state", "get_rng_state", "manual_seed", "random",
    "load_state_dict", "state_dict", "dlopen", "cdll", "CDLL", "LoadLibrary",
    # introspection: frames, code objects, function globals, the class hierarchy
    "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "gi_frame", "gi_code", "cr_frame",
    "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next", "func_globals", "mro", "format_map",
    "gi_yieldfrom", "cr_await",
})
BANNED_ATTRIBUTE_PREFIXES = ("register_", "set_default", "co_", "_")
# Dunder methods a reward-defined class may define.
ALLOWED_DUNDER_DEFS = frozenset({"__init__", "__call__", "__len__", "__getitem__"})


@dataclass(frozen=True)
class Issue:
    """One reason the source is refused: ``line`` is 1-based (0 = the whole file)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ValidationError(ValueError):
    """Raised by ``ensure_valid``; ``issues`` lists every problem found, first one in the message."""

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        first = str(self.issues[0]) if self.issues else "invalid reward source"
        more = f" (and {len(self.issues) - 1} more issue(s))" if len(self.issues) > 1 else ""
        super().__init__(first + more)

    @property
    def line(self) -> int:
        return self.issues[0].line if self.issues else 0


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def module_allowed(dotted: str) -> str | None:
    """None when a reward may import ``dotted`` (``allowed.MODULES``), else the reason (shared with the
    jail's import gate)."""
    if dotted in allowed.MODULES:
        return None
    top = dotted.split(".")[0]
    if top not in ALLOWED_MODULES:
        return f"import of {dotted!r} is not allowed (only {', '.join(sorted(ALLOWED_MODULES))})"
    parts = dotted.split(".")
    if any(p.startswith("_") for p in parts[1:]):
        return f"import of private module {dotted!r} is not allowed"
    for i in range(2, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in BANNED_TORCH_PATHS:
            return f"{prefix} is not available to rewards (file, process, native-code or global-state API)"
    if dotted.startswith("torch.") and ".".join(parts[:-1]) in allowed.NAMESPACE_NAMES \
            and parts[-1] in allowed.NAMESPACE_NAMES[".".join(parts[:-1])]:
        return None  # a function of an allowed namespace (from torch.linalg import norm)
    return (f"{dotted} is not available to rewards (they may use torch's functions and its nn.functional, "
            "linalg and special namespaces, and math)")


def attribute_problem(name: str) -> str | None:
    """None when ``x.<name>`` is acceptable on any object (``allowed.ATTRIBUTES``), else why not."""
    if _is_dunder(name):
        return f"access to dunder attribute .{name} is not allowed"
    if name in BANNED_ATTRIBUTES:
        return f"access to attribute .{name} is not allowed (file, process, native-code or introspection API)"
    if name.startswith("_"):
        return f"access to private attribute .{name} is not allowed"
    if name in allowed.NAMESPACES:
        return (f"torch's namespace .{name} may only be read from an imported torch (torch.nn, torch.nn.functional, "
                "torch.linalg, torch.special)")
    if name not in allowed.ATTRIBUTES:
        return (f"attribute .{name} is not one a reward may use (torch's functions, tensor methods, the State's "
                "fields, math; a class of the reward's own reads its attributes through self)")
    return None


def _own_names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Attribute names of the reward's own: those it stores (``self.scale = ...``, anywhere), and those
    its classes define (methods, class-level names)."""
    stored = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    defined: set[str] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for item in cls.body:
            if isinstance(item, ast.FunctionDef):
                defined.add(item.name)
            elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                defined.update(t.id for t in targets if isinstance(t, ast.Name))
    return stored, defined


def _dotted_problem(dotted: str | None) -> str | None:
    """Why ``torch.a.b`` or ``math.x`` (a path from an imported module) is not available, or None."""
    if not dotted:
        return None
    parts = dotted.split(".")
    if parts[0] == "math":
        return None if len(parts) < 2 or parts[1] in allowed.MATH else f"math has no {parts[1]!r} a reward may use"
    namespace = parts[0]
    for part in parts[1:]:
        held = allowed.NAMESPACE_NAMES.get(namespace)
        if held is None:
            return None  # past a function or dtype: the attribute names are checked one by one
        if part not in held:
            path = f"{namespace}.{part}"
            for i in range(2, len(path.split(".")) + 1):
                prefix = ".".join(path.split(".")[:i])
                if prefix in BANNED_TORCH_PATHS:
                    return f"{prefix} is not available to rewards (file, process, native-code or global-state API)"
            return (f"{path} is not available to rewards (they may use torch's functions and its nn.functional, "
                    "linalg and special namespaces, and math)")
        namespace = f"{namespace}.{part}"
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, own_names: AbstractSet[str] = frozenset()) -> None:
        self.issues: list[Issue] = []
        self.module_aliases: dict[str, str] = {}
        self.own_names = own_names
        self.class_depth = 0

    def add(self, node: ast.AST | None, message: str) -> None:
        self.issues.append(Issue(getattr(node, "lineno", 0) or 0, message))

    # imports -----------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            why = module_allowed(alias.name)
            if why:
                self.add(node, why)
            else:
                local = alias.asname or alias.name.split(".")[0]
                self.module_aliases[local] = alias.name if alias.asname else alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.add(node, "relative imports are not allowed")
            return
        if module == "__future__":
            return
        why = module_allowed(module)
        if why:
            self.add(node, why)
            return
        for alias in node.names:
            if alias.name == "*":
                if module != "math":
                    self.add(node, f"'from {module} import *' is not allowed; import names explicitly")
                continue
            full = f"{module}.{alias.name}"
            if module == "math":
                why = None if alias.name in allowed.MATH else f"math has no {alias.name!r} a reward may use"
            else:
                why = module_allowed(full)
            if why:
                self.add(node, f"from {module} import {alias.name}: {why}")
            else:
                self.module_aliases[alias.asname or alias.name] = full

    # names and attributes -----------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in BANNED_NAMES:
            self.add(node, f"use of {node.id!r} is not allowed")
        elif _is_dunder(node.id):
            self.add(node, f"use of dunder name {node.id!r} is not allowed")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and node.id in self.module_aliases:
            self.add(node, f"rebinding the module name {node.id!r} is not allowed (name your variable differently)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = self._dotted(node)
        parent = self._dotted(node.value)
        own = node.attr in self.own_names and parent is None
        if node.attr in allowed.NAMESPACES and parent in allowed.NAMESPACE_NAMES \
                and node.attr in allowed.NAMESPACE_NAMES[parent]:
            why = None  # torch.nn, torch.nn.functional, torch.linalg, torch.special
        elif own:
            why = None  # a name of the reward's own (checked to be one no real object carries)
        else:
            why = attribute_problem(node.attr)
        if why:
            self.add(node, why)
        if parent is not None and (banned := _dotted_problem(dotted)):
            self.add(node, banned)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and self._root_is_module(node):
            self.add(node, f"assigning to or deleting {dotted or 'an attribute of a module'} (monkeypatching) "
                           "is not allowed")
        elif isinstance(node.ctx, ast.Del):
            self.add(node, f"deleting .{node.attr} is not allowed")
        self.generic_visit(node)

    # match statements: class patterns read attributes by bare name, captures bind names --------
    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for name in node.kwd_attrs:  # ``case C(attr=x)`` reads C-instance.attr like ``x = obj.attr``
            why = attribute_problem(name)
            if why:
                self.add(node, f"match pattern {name}=...: {why}")
        self.generic_visit(node)

    def _capture(self, node: ast.AST, name: str | None) -> None:
        if name and (name in BANNED_NAMES or _is_dunder(name) or name.startswith("_")):
            self.add(node, f"match pattern may not bind the name {name!r}")

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self._capture(node, node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        self._capture(node, node.name)
        self.generic_visit(node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self._capture(node, node.rest)
        self.generic_visit(node)

    def _dotted(self, node: ast.AST) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.module_aliases:
            return ".".join([self.module_aliases[node.id], *reversed(parts)])
        return None

    def _root_is_module(self, node: ast.AST) -> bool:
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return isinstance(node, ast.Name) and node.id in self.module_aliases

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)) and self._root_is_module(node):
            self.add(node, "assigning into a module's attributes (monkeypatching) is not allowed")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "__" in node.value:
            self.add(node, "string literals containing '__' are not allowed (attribute-name tricks)")
        elif isinstance(node.value, bytes) and b"__" in node.value:
            self.add(node, "bytes literals containing '__' are not allowed (attribute-name tricks)")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "hasattr":
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.add(node, "hasattr with an attribute name built at runtime is not allowed")
            elif (why := attribute_problem(name.value)) is not None:
                self.add(node, f"hasattr(..., {name.value!r}): {why}")
        if isinstance(func, ast.Attribute) and func.attr == "format":
            target = func.value
            if not (isinstance(target, ast.Constant) and isinstance(target.value, str)):
                self.add(node, "str.format is only allowed on a string literal")
            else:
                try:
                    fields = [f for _, f, _, _ in string.Formatter().parse(target.value) if f]
                except ValueError:
                    fields = ["?."]
                if any("." in f or "[" in f for f in fields):
                    self.add(node, "format fields with attribute or index access are not allowed")
        self.generic_visit(node)

    # definitions and statements ----------------------------------------------------------------
    def _check_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if _is_dunder(node.name) and not (self.class_depth and node.name in ALLOWED_DUNDER_DEFS):
            self.add(node, f"defining {node.name!r} is not allowed")
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None and _is_dunder(a.arg):
                self.add(node, f"dunder parameter name {a.arg!r} is not allowed")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_def(node)
        depth, self.class_depth = self.class_depth, 0
        self.generic_visit(node)
        self.class_depth = depth

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.add(node, "async functions are not allowed")

    def visit_Await(self, node: ast.Await) -> None:
        self.add(node, "await is not allowed")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if _is_dunder(node.name):
            self.add(node, f"class name {node.name!r} is not allowed")
        if node.keywords:
            self.add(node, "class keywords (metaclass=...) are not allowed")
        self.class_depth += 1
        self.generic_visit(node)
        self.class_depth -= 1

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            if _is_dunder(name):
                self.add(node, f"global {name!r} is not allowed")

    def visit_alias(self, node: ast.alias) -> None:  # handled by the import visitors
        return


def validate_source(source: str, filename: str = "reward.py") -> list[Issue]:
    """Every reason ``source`` is refused as a reward (empty list: accepted), in line order."""
    if not isinstance(source, str):
        return [Issue(0, f"reward source must be text, got {type(source).__name__}")]
    if len(source) > MAX_SOURCE_CHARS:
        return [Issue(0, f"reward source is {len(source)} characters; the limit is {MAX_SOURCE_CHARS}")]
    if "\x00" in source:
        return [Issue(0, "reward source contains a NUL character")]
    try:
        tree = parse(source, filename=filename)
    except SyntaxError as exc:
        return [Issue(exc.lineno or 0, f"SyntaxError: {exc.msg}")]
    except (RecursionError, MemoryError, ValueError) as exc:
        return [Issue(0, f"reward source could not be parsed ({type(exc).__name__}: nested too deeply?)")]
    try:
        stored, defined = _own_names(tree)
    except RecursionError:
        return [Issue(0, "reward source is nested too deeply")]
    # names of the reward's own may be read on any object, so none may be a name a real object carries
    # (read on torch, a tensor or a module it is then simply absent), and a stored one may not be a
    # listed name either (``self.relu = ...`` on a ``self`` bound to torch.nn.functional would patch it)
    own = {n for n in stored | defined if not n.startswith("_") and n not in BANNED_ATTRIBUTES}
    checker = _Checker(own)
    fresh_needed = (stored | (defined - allowed.ATTRIBUTES)) - {n for n in stored | defined if n.startswith("_")}
    if fresh_needed:
        reachable = allowed.reachable_names()
        for name in sorted(fresh_needed):
            if name in reachable or name in BANNED_ATTRIBUTES or (name in stored and name in allowed.ATTRIBUTES):
                checker.add(None, f"the reward's own attribute .{name} has the name of an attribute real objects "
                                  "carry (torch, tensors, modules); name it differently")
    try:
        checker.visit(tree)
    except RecursionError:
        return [Issue(0, "reward source is nested too deeply")]
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "compute_reward"]
    if not defs:
        checker.add(None, "the reward must define a top-level function compute_reward(s)")
    elif not (defs[-1].args.posonlyargs or defs[-1].args.args or defs[-1].args.vararg):
        checker.add(defs[-1], "compute_reward must take the state as its first argument: compute_reward(s)")
    unique = sorted(set(checker.issues), key=lambda i: (i.line == 0, i.line, i.message))  # whole-file last
    return unique


def ensure_valid(source: str, filename: str = "reward.py") -> None:
    """Raise ``ValidationError`` (message: first issue, with its line) unless ``source`` is accepted."""
    issues = validate_source(source, filename)
    if issues:
        raise ValidationError(issues)
