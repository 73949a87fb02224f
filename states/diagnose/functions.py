"""Which functions a change touched, and whether telemetry names them.

A regression lives in a function whose body changed, and telemetry often names
that function: as a frame of a stack trace, or as the operation a slow request
performed (``catalog.search_items``, ``GET /cart/add-line``). Hunk headers only
carry a guess at the enclosing function, so the file is read at the commit's
own revision and its functions located: exactly with ``ast`` for Python, by
signatures and brace depth for the C family (Java, JavaScript, TypeScript, Go,
C#, Kotlin). Everything here is pure: text in, names out.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PYTHON_SUFFIXES = (".py", ".pyi")
BRACE_SUFFIXES = (".java", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".go", ".cs", ".kt")

# Tokens too common to tie an operation to a function: HTTP verbs and generic verbs.
STOP_TOKENS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "api", "http", "https"}
    | {"handle", "handler", "run", "main", "init", "call", "process", "execute", "apply"}
    | {"anonymous", "lambda", "module", "new", "self", "this"}
)
ANONYMOUS = frozenset({"anonymous", "lambda", "module", "genexpr", "listcomp", "dictcomp"})
MIN_TOKEN_CHARS = 3
MAX_SIGNATURE_LINES = 4  # a signature wrapped over more lines is not looked for

_CONTROL = frozenset({"if", "for", "while", "switch", "catch", "return", "new", "else", "do"})
_CONTROL |= frozenset({"try", "synchronized", "function", "await", "throw", "typeof", "with"})
_DEFINERS = frozenset({"def", "class", "lambda", "print", "super", "len", "range", "str", "int"})
_CALL = re.compile(r"(?<![\w$])([A-Za-z_$][\w$]*)\s*\(")
_SIGNATURES = (
    re.compile(
        r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*(?P<name>[\w$]+)\s*\("
    ),
    re.compile(r"^\s*func\s+(?:\([^)]*\)\s*)?(?P<name>\w+)\s*[\[(]"),
    re.compile(
        r"^\s*(?:(?:export|const|let|var|static|readonly|public|private|protected)\s+)*"
        r"(?P<name>[\w$]+)\s*[=:]\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|[\w$]+\s*=>)"
    ),
    re.compile(
        r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*"
        r"(?:(?:public|private|protected|internal|static|final|abstract|synchronized|native"
        r"|override|async|virtual|suspend|open|fun|def|get|set|default)\s+)*"
        r"(?:<[^>]+>\s+)?(?:[\w$.<>\[\],?]+\s+)?(?P<name>[\w$]+)\s*\([^;{]*(?:\{.*)?$"
    ),
)
_CLASS = re.compile(
    r"^\s*(?:[\w@]+\s+)*(?:class|interface|enum|record|object|struct)\s+(?P<name>[\w$]+)"
)


@dataclass(frozen=True)
class FunctionSpan:
    """A function's qualified name (``Class.method``) and its first and last line."""

    name: str
    start: int
    end: int


def function_spans(path: str, text: str) -> list[FunctionSpan]:
    """Every function defined in a source file, outer ones before those nested in them."""
    if path.endswith(PYTHON_SUFFIXES):
        return _python_spans(text)
    if path.endswith(BRACE_SUFFIXES):
        return _brace_spans(text)
    return []


def source_file(path: str) -> bool:
    """Whether functions can be located in ``path`` (a language this module reads)."""
    return path.endswith(PYTHON_SUFFIXES + BRACE_SUFFIXES)


def called_names(text: str) -> frozenset[str]:
    """Every name written as a call in ``text`` (``name(``), control keywords aside."""
    return frozenset(_CALL.findall(text)) - _CONTROL - _DEFINERS


def functions_at(spans: Sequence[FunctionSpan], lines: Iterable[int]) -> frozenset[str]:
    """The innermost function enclosing each line (lines outside any function are skipped)."""
    found = set()
    for line in lines:
        inside = [s for s in spans if s.start <= line <= s.end]
        if inside:
            found.add(min(inside, key=lambda s: s.end - s.start).name)
    return frozenset(found)


def _python_spans(text: str) -> list[FunctionSpan]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    spans: list[FunctionSpan] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                name = f"{scope}{child.name}"
                spans.append(FunctionSpan(name, start, child.end_lineno or child.lineno))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{scope}{child.name}.")
            else:
                visit(child, scope)

    visit(tree, "")
    return spans


def _brace_spans(text: str) -> list[FunctionSpan]:
    """Functions of a brace language: a signature line, then until its braces close."""
    lines = text.splitlines()
    depths = _depths(lines)
    spans: list[FunctionSpan] = []
    classes: list[tuple[str, int]] = []  # (name, depth inside it)
    for index, row in enumerate(lines):
        classes = [c for c in classes if depths[index] >= c[1]]
        if (match := _CLASS.match(row)) is not None and "(" not in row.split("{")[0]:
            classes.append((match.group("name"), depths[index] + 1))
            continue
        name = _signature_name(row)
        if name is None:
            continue
        end = _block_end(lines, depths, index)
        if end is not None:
            scope = classes[-1][0] + "." if classes else ""
            spans.append(FunctionSpan(scope + name, index + 1, end + 1))
    return spans


def _signature_name(row: str) -> str | None:
    for pattern in _SIGNATURES:
        match = pattern.match(row)
        if match is not None and match.group("name") not in _CONTROL:
            return match.group("name")
    return None


def _depths(lines: Sequence[str]) -> list[int]:
    """The brace depth at the start of each line (string and comment braces count; rare)."""
    depths, depth = [], 0
    for row in lines:
        depths.append(depth)
        depth = max(0, depth + row.count("{") - row.count("}"))
    return depths


def _block_end(lines: Sequence[str], depths: Sequence[int], start: int) -> int | None:
    """The line where the block opened on (or just after) ``start`` closes, if one opens."""
    opening = None
    for index in range(start, min(len(lines), start + MAX_SIGNATURE_LINES)):
        if "{" in lines[index]:
            opening = index
            break
        if lines[index].rstrip().endswith(";"):
            return None  # a call or an abstract declaration, not a definition
    if opening is None:
        return None
    outer = depths[start]
    for index in range(opening, len(lines)):
        after = depths[index + 1] if index + 1 < len(depths) else 0
        if after <= outer:
            return index
    return len(lines) - 1


def name_tokens(name: str) -> frozenset[str]:
    """Lower-case words of an identifier or operation: ``addLine``, ``add_line``, ``add-line``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return frozenset(w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w)


def _meaningful(tokens: frozenset[str]) -> frozenset[str]:
    return frozenset(t for t in tokens if len(t) >= MIN_TOKEN_CHARS and t not in STOP_TOKENS)


def singular(word: str) -> str:
    """An English plural as its singular (``items``, ``categories``, ``batches``), else the word.

    Routes name collections (``GET /catalog/items/{id}``, ``/users/{user_id}``)
    and code names one of them (``get_item``, ``load_user``). Both sides go
    through this, so a word it gets wrong (``news``) still matches itself.
    """
    if len(word) <= MIN_TOKEN_CHARS or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    return word[:-1]


def names_operation(function: str, operation: str) -> bool:
    """Whether ``operation`` names ``function``: every meaningful word of its name appears.

    Words match in their singular form, so a route's collection names the
    function of one of its members.
    """
    wanted = {singular(t) for t in _meaningful(name_tokens(function.rsplit(".", 1)[-1]))}
    return bool(wanted) and wanted <= {singular(t) for t in name_tokens(operation)}


def names_frame_function(function: str, frame_function: str) -> bool:
    """Whether a frame's function (``pkg.Class.method``, ``Class.method``, ``method``) is ``function``.

    The method names must be equal; when both name a class, so must the classes.
    Generic verbs count here (a frame's ``Db.execute`` is that very method, in
    that very file); only anonymous code names no definition.
    """
    ours, theirs = function.split("."), frame_function.split(".")
    if ours[-1] != theirs[-1] or ours[-1].strip("<>") in ANONYMOUS:
        return False
    return len(ours) < 2 or len(theirs) < 2 or ours[-2] == theirs[-2]
