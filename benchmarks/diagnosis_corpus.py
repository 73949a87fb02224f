"""Generated incidents for the diagnosis benchmark: real git repositories, real commits.

Each base repository is a small service in Python, Java or JavaScript (a
server, several components each with a service and a store module, shared
database code, tests, docs, CI and dependency files) with a history of a few
dozen commits by several authors over two months. Each incident is a release
on its own branch of a base: one culprit commit among innocent ones, the
culprit anywhere in the release, innocents touching other components, the
same component, the same file, docs, tests, dependencies, the server's
dispatch lines or, now and then, the very line an exception is raised from.

Code is modelled as files of functions of one-line statements, each statement
with an id, so the generator knows at every revision on which line each
statement is: the stack traces it writes (in each runtime's own format, parsed
by the agent's own parser) point at real lines of the running revision.
Commits are written with ``git fast-import`` (one process per repository and
per incident), which makes ordinary commits quickly.

Regressions come in three kinds: latency (a scan, a query per item, a
backoff), errors (an exception raised by the changed line, or further down by
an unchanged line the change now reaches) and memory (a cache that never
evicts). Error incidents mostly carry stack traces, latency ones sometimes
(timeouts), memory ones rarely; slow or failing operations are named in some.
Everything is drawn from one seeded ``random.Random``.
"""

from __future__ import annotations

import copy
import os
import random
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from states.diagnose.frames import Frame
from states.telemetry.stacktraces import parse_stack_text

LANGUAGES = ("python", "java", "javascript")
KINDS = ("latency", "errors", "memory")
COMPONENTS: dict[str, tuple[str, ...]] = {
    "catalog": ("item", "sku", "price", "listing"),
    "cart": ("line", "cart", "coupon", "total"),
    "auth": ("token", "session", "password", "role"),
    "payments": ("charge", "refund", "invoice", "card"),
    "shipping": ("quote", "parcel", "label", "carrier"),
    "orders": ("order", "receipt", "status", "history"),
    "users": ("profile", "address", "preference", "account"),
    "inventory": ("stock", "reservation", "warehouse", "batch"),
}
VERBS = (
    "load", "save", "find", "list", "update", "validate", "compute", "render",
    "parse", "merge", "refresh", "reserve", "cancel", "count", "export", "import",
)  # fmt: skip
FIELDS = ("quantity", "amount", "updated_at", "weight", "priority", "score", "size")
AUTHORS = (
    ("Alice Moreau", "alice.moreau@acme.example"),
    ("Bilal Haddad", "bilal.haddad@acme.example"),
    ("Chen Wei", "chen.wei@acme.example"),
    ("Dana Okafor", "dana.okafor@acme.example"),
    ("Emil Lindqvist", "emil.lindqvist@acme.example"),
    ("Farah Siddiqui", "farah.siddiqui@acme.example"),
    ("Goran Petrovic", "goran.petrovic@acme.example"),
    ("Hana Sato", "hana.sato@acme.example"),
)
EPOCH = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE_HISTORY = 45
LOOKBACK_S = 3 * 86400.0


# --- the code model --------------------------------------------------------------------------------


@dataclass
class Statement:
    """One line of a function body; ``calls`` names the function it calls, if any."""

    sid: int
    text: str
    calls: str | None = None


@dataclass
class Function:
    """A function of a code file; its last statement is its return and is never edited."""

    name: str
    params: tuple[str, ...]
    body: list[Statement]


@dataclass
class CodeFile:
    """A source file: module-level constants and functions."""

    path: str
    language: str
    role: str  # service, store, common, server, test
    component: str
    header: list[str]
    constants: list[Statement]
    functions: list[Function]
    cls: str = ""  # Java class name


@dataclass
class Service:
    """The whole code base at one revision."""

    language: str
    components: list[str]
    code: dict[str, CodeFile]
    text: dict[str, list[str]]  # docs, CI and dependency files, line by line
    next_sid: int = 0

    def sid(self) -> int:
        self.next_sid += 1
        return self.next_sid

    def component_paths(self, component: str) -> tuple[str, ...]:
        return (component_dir(self.language, component),)


def camel(words: Sequence[str]) -> str:
    return words[0] + "".join(w.capitalize() for w in words[1:])


def ident(language: str, *words: str) -> str:
    return "_".join(words) if language == "python" else camel(words)


def component_dir(language: str, component: str) -> str:
    return {
        "python": f"svc/{component}/",
        "java": f"src/main/java/com/acme/{component}/",
        "javascript": f"src/{component}/",
    }[language]


def code_path(language: str, component: str, role: str) -> str:
    cap = component.capitalize()
    if language == "python":
        return {
            "service": f"svc/{component}/service.py",
            "store": f"svc/{component}/store.py",
            "common": "svc/common/db.py",
            "server": "svc/server.py",
            "test": f"tests/test_{component}.py",
        }[role]
    if language == "java":
        return {
            "service": f"src/main/java/com/acme/{component}/{cap}Service.java",
            "store": f"src/main/java/com/acme/{component}/{cap}Repository.java",
            "common": "src/main/java/com/acme/common/Db.java",
            "server": "src/main/java/com/acme/Server.java",
            "test": f"src/test/java/com/acme/{component}/{cap}ServiceTest.java",
        }[role]
    return {
        "service": f"src/{component}/service.js",
        "store": f"src/{component}/store.js",
        "common": "src/common/db.js",
        "server": "src/server.js",
        "test": f"test/{component}.test.js",
    }[role]


# --- statements ------------------------------------------------------------------------------------


def _fill(template: str, rng: random.Random, noun: str, param: str) -> str:
    return template.format(
        a=f"{noun}s",
        noun=noun,
        p=param,
        field=rng.choice(FIELDS),
        n=rng.randint(1, 500),
        table=f"{noun}s",
    )


PLAIN: dict[str, tuple[str, ...]] = {
    "python": (
        "{a} = [x for x in {a} if x.{field} > {n}]",
        'log.info("%s %s", {p}, len({a}))',
        "{a} = sorted({a}, key=lambda x: x.{field})",
        "total = sum(x.{field} for x in {a})",
        "{a} = {a}[:LIMIT]",
        'if not {p}: raise LookupError("unknown {noun}")',
        "seen = {{x.{field} for x in {a}}}",
        "{a} = [x for x in {a} if x.{field} is not None]",
        "metrics.observe({n}, len({a}))",
        # Harmless lines that still look like the usual suspects of a regression.
        '{a} = db.query("SELECT * FROM {table} WHERE owner = ?", {p})',
        'log.debug("retrying %s", {p})',
        "_SEEN.add({p})",
        "count = int({p})",
        "{a} = [x for x in {a} if x.{field} in ALLOWED]",  # a set: no quadratic scan
        "mean = total / len({a}) if {a} else 0.0",  # guarded: no division by zero
    ),
    "java": (
        "{a} = {a}.stream().filter(x -> x.{field}() > {n}).toList();",
        'log.info("{noun} {{}} {{}}", {p}, {a}.size());',
        "{a} = {a}.stream().sorted(Comparator.comparing(x -> x.{field}())).toList();",
        "long total = {a}.stream().mapToLong(x -> x.{field}()).sum();",
        "{a} = {a}.subList(0, Math.min({a}.size(), LIMIT));",
        'if ({p} == null) {{ throw new IllegalArgumentException("unknown {noun}"); }}',
        "metrics.observe({n}, {a}.size());",
        '{a} = db.queryAll("{table}", {p});',
        'log.debug("retrying {{}}", {p});',
        "SEEN.add({p});",
        "int count = Integer.parseInt({p});",
        "{a} = {a}.stream().filter(x -> ALLOWED.contains(x.{field}())).toList();",
        "long mean = {a}.isEmpty() ? 0 : total / {a}.size();",
    ),
    "javascript": (
        "{a} = {a}.filter((x) => x.{field} > {n});",
        'log.info("{noun}", {p}, {a}.length);',
        "{a} = [...{a}].sort((x, y) => x.{field} - y.{field});",
        "const total = {a}.reduce((sum, x) => sum + x.{field}, 0);",
        "{a} = {a}.slice(0, LIMIT);",
        'if (!{p}) {{ throw new Error("unknown {noun}"); }}',
        "metrics.observe({n}, {a}.length);",
        '{a} = await db.queryAll("{table}", {p});',
        'log.debug("retrying", {p});',
        "SEEN.add({p});",
        "const count = Number.parseInt({p}, 10);",
        "{a} = {a}.filter((x) => ALLOWED.includes(x.{field}));",
        "const mean = {a}.length ? total / {a}.length : 0;",
    ),
}
REGRESSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "python": {
        "latency": (
            '{a} = [db.query("SELECT * FROM {table} WHERE id = ?", x.id) for x in {a}]',
            '{a} = sorted(db.query("SELECT * FROM {table}"), key=lambda x: x.{field})',
            "time.sleep(RETRY_BACKOFF_S * len({a}))",
            "{a} = [x for x in {a} if x.{field} in {a}]",  # a list searched per item
        ),
        "errors": (
            "price = {a}[0].prices[{p}.currency]",
            'if {p}.{field} is None: raise ValueError("{noun} without {field}")',
            '{noun}_id = int(str({p}).split(":")[1])',
            "average = total / len({a})",  # empty lists divide by zero
        ),
        "memory": (
            "_CACHE[{p}] = list({a})",
            "HISTORY.append(({p}, {a}))",
            "{a} = [x for x in {a} for _ in range({n})]",  # copies: no lexical cue
        ),
    },
    "java": {
        "latency": (
            '{a} = {a}.stream().map(x -> db.queryOne("{table}", x.id())).toList();',
            '{a} = db.queryAll("{table}").stream().filter(x -> x.id().equals({p})).toList();',
            "Thread.sleep(RETRY_BACKOFF_MS * {a}.size());",
            "{a} = {a}.stream().filter(x -> {a}.contains(x)).toList();",
        ),
        "errors": (
            "var price = {a}.get(0).prices().get({p}.currency());",
            'Objects.requireNonNull({p}.{field}(), "{noun} without {field}");',
            'int {noun}Id = Integer.parseInt(String.valueOf({p}).split(":")[1]);',
            "long average = total / {a}.size();",
        ),
        "memory": (
            "CACHE.put({p}, new ArrayList<>({a}));",
            "HISTORY.add(List.of({p}, {a}));",
            "var copies = Collections.nCopies({n}, {a});",
        ),
    },
    "javascript": {
        "latency": (
            '{a} = await Promise.all({a}.map((x) => db.queryOne("{table}", x.id)));',
            '{a} = (await db.queryAll("{table}")).filter((x) => x.id === {p});',
            "await sleep(RETRY_BACKOFF_MS * {a}.length);",
            "{a} = {a}.filter((x) => {a}.includes(x));",
        ),
        "errors": (
            "const price = {a}[0].prices[{p}.currency].amount;",
            'if ({p}.{field} === undefined) {{ throw new TypeError("{noun} without {field}"); }}',
            'const {noun}Id = Number.parseInt(String({p}).split(":")[1].trim(), 10);',
            "const average = total / {a}.length;",
        ),
        "memory": (
            "cache.set({p}, [...{a}]);",
            "history.push([{p}, {a}]);",
            "const copies = Array({n}).fill({a});",
        ),
    },
}
EXCEPTIONS = {
    "python": {"errors": "ValueError", "latency": "TimeoutError", "memory": "MemoryError"},
    "java": {
        "errors": "java.lang.IllegalStateException",
        "latency": "java.util.concurrent.TimeoutException",
        "memory": "java.lang.OutOfMemoryError",
    },
    "javascript": {
        "errors": "TypeError",
        "latency": "TimeoutError",
        "memory": "RangeError",
    },
}


def plain_statement(service: Service, rng: random.Random, noun: str, param: str) -> Statement:
    template = rng.choice(PLAIN[service.language])
    return Statement(service.sid(), _fill(template, rng, noun, param))


def call_statement(service: Service, noun: str, param: str, callee: str, target: str) -> Statement:
    lang = service.language
    a = f"{noun}s"
    if lang == "python":
        text = f"{a} = {target}.{callee}({param})"
    elif lang == "java":
        text = f"var {a} = {target}.{callee}({param});"
    else:
        text = f"let {a} = await {target}.{callee}({param});"
    return Statement(service.sid(), text, calls=callee)


def return_statement(service: Service, noun: str) -> Statement:
    end = "" if service.language == "python" else ";"
    return Statement(service.sid(), f"return {noun}s{end}")


# --- building a service ----------------------------------------------------------------------------


def new_function(
    service: Service,
    rng: random.Random,
    component: str,
    callees: Sequence[tuple[str, str]],
    taken: set[str],
) -> Function:
    nouns = COMPONENTS.get(component, ("record", "row", "entry"))
    for _ in range(50):
        verb, noun = rng.choice(VERBS), rng.choice(nouns)
        name = ident(service.language, verb, noun + ("s" if verb in ("list", "count") else ""))
        if name not in taken:
            break
    taken.add(name)
    param = ident(service.language, noun, "id")
    body = [plain_statement(service, rng, noun, param) for _ in range(rng.randint(2, 5))]
    if callees:
        target, callee = rng.choice(list(callees))
        body.insert(rng.randint(0, len(body)), call_statement(service, noun, param, callee, target))
    body.append(return_statement(service, noun))
    return Function(name, (param,), body)


def build_service(rng: random.Random, language: str) -> Service:
    components = rng.sample(sorted(COMPONENTS), rng.randint(4, 6))
    service = Service(language, components, {}, {})
    db_names = [ident(language, *w) for w in (("query",), ("execute",), ("fetch", "one"))]
    db = CodeFile(code_path(language, "", "common"), language, "common", "common", [], [], [], "Db")
    for name in db_names:
        body = [plain_statement(service, rng, "row", "sql") for _ in range(rng.randint(2, 4))]
        body.append(return_statement(service, "row"))
        db.functions.append(Function(name, ("sql",), body))
    service.code[db.path] = db
    server = CodeFile(
        code_path(language, "", "server"), language, "server", "server", [], [], [], "Server"
    )
    dispatch: list[Statement] = []
    for component in components:
        cap = component.capitalize()
        store = CodeFile(
            code_path(language, component, "store"), language, "store", component, [], [], [],
            f"{cap}Repository",
        )  # fmt: skip
        taken: set[str] = set()
        db_target = {"python": "db", "java": "db", "javascript": "db"}[language]
        for _ in range(rng.randint(3, 5)):
            callees = [(db_target, n) for n in db_names]
            store.functions.append(new_function(service, rng, component, callees, taken))
        svc = CodeFile(
            code_path(language, component, "service"), language, "service", component, [], [], [],
            f"{cap}Service",
        )  # fmt: skip
        store_target = "store" if language != "java" else "repository"
        for _ in range(rng.randint(4, 6)):
            callees = [(store_target, f.name) for f in store.functions]
            svc.functions.append(new_function(service, rng, component, callees, taken))
        for module in (store, svc):
            module.constants.append(Statement(service.sid(), constant(language, "LIMIT", 100)))
            service.code[module.path] = module
        dispatch.extend(dispatch_statement(service, component, f.name) for f in svc.functions)
        test = CodeFile(
            code_path(language, component, "test"), language, "test", component, [], [], [],
            f"{cap}ServiceTest",
        )  # fmt: skip
        for f in svc.functions[:3]:
            test.functions.append(test_function(service, rng, f.name))
        service.code[test.path] = test
        service.text[f"docs/{component}.md"] = doc_lines(component)
    dispatch.append(Statement(service.sid(), "return not_found(request)" + _end(language)))
    server.functions.append(Function("dispatch", ("request",), dispatch))
    service.code[server.path] = server
    service.text["README.md"] = [
        "# Acme shop",
        "",
        f"Components: {', '.join(components)}.",
        "",
        "Run the tests before sending a change.",
    ]
    service.text[".github/workflows/ci.yml"] = [
        "name: ci",
        "on: [push, pull_request]",
        "jobs:",
        "  test:",
        "    runs-on: ubuntu-latest",
        "    steps:",
        "      - uses: actions/checkout@v4",
        f"      - run: {test_command(language)}",
    ]
    service.text[dependency_file(language)] = dependency_lines(language)
    return service


def _end(language: str) -> str:
    return "" if language == "python" else ";"


def constant(language: str, name: str, value: int) -> str:
    return {
        "python": f"{name} = {value}",
        "java": f"private static final int {name} = {value};",
        "javascript": f"const {name} = {value};",
    }[language]


def dispatch_statement(service: Service, component: str, entry: str) -> Statement:
    """The server's route to one service function."""
    route = f"/{component}/{kebab(entry)}"
    if service.language == "python":
        text = f'if request.path == "{route}": return {component}.{entry}(request)'
    else:
        text = f'if (request.path == "{route}") {{ return {component}.{entry}(request); }}'
    return Statement(service.sid(), text, calls=entry)


def route_of(service: Service, component: str, function: str) -> tuple[CodeFile, Function, int]:
    """The dispatch frame of requests entering ``function`` (any route of the component if none)."""
    server = service.code[code_path(service.language, "", "server")]
    dispatch = server.functions[0]
    routes = [s for s in dispatch.body if f'"/{component}/' in s.text]
    entry = next((s for s in routes if s.calls == function), routes[0])
    return server, dispatch, entry.sid


def test_function(service: Service, rng: random.Random, target: str) -> Function:
    lang = service.language
    name = ident(lang, "test", target) if lang == "python" else camel(["test", target])
    n = rng.randint(1, 9)
    if lang == "python":
        body = [f"result = service.{target}(fixture({n}))", "assert result is not None"]
    elif lang == "java":
        body = [f"var result = service.{target}(fixture({n}));", "assertNotNull(result);"]
    else:
        body = [f"const result = await service.{target}(fixture({n}));", "assert.ok(result);"]
    return Function(name, (), [Statement(service.sid(), t) for t in body])


def doc_lines(component: str) -> list[str]:
    return [
        f"# {component.capitalize()}",
        "",
        f"The {component} component owns its store and exposes its operations to the server.",
        "",
        "## Operations",
        "",
    ]


def test_command(language: str) -> str:
    return {"python": "python -m pytest", "java": "mvn -q test", "javascript": "npm test"}[language]


def dependency_file(language: str) -> str:
    return {"python": "requirements.txt", "java": "pom.xml", "javascript": "package.json"}[language]


def dependency_lines(language: str) -> list[str]:
    if language == "python":
        return ["orjson==3.10.1", "psycopg==3.1.18", "structlog==24.1.0"]
    if language == "java":
        return [
            "<project>",
            "  <dependencies>",
            "    <dependency><artifactId>jackson-databind</artifactId><version>2.17.0</version></dependency>",
            "    <dependency><artifactId>postgresql</artifactId><version>42.7.3</version></dependency>",
            "  </dependencies>",
            "</project>",
        ]
    return [
        "{",
        '  "name": "acme-shop",',
        '  "dependencies": {',
        '    "pg": "8.11.3",',
        '    "pino": "8.19.0"',
        "  }",
        "}",
    ]


# --- rendering -------------------------------------------------------------------------------------


def render(file: CodeFile) -> tuple[str, dict[int, int]]:
    """The file's text and the line of every statement id."""
    out: list[str] = []
    where: dict[int, int] = {}

    def put(text: str, sid: int | None = None) -> None:
        out.append(text)
        if sid is not None:
            where[sid] = len(out)

    {"python": _render_python, "java": _render_java, "javascript": _render_js}[file.language](
        file, put
    )
    return "\n".join(out) + "\n", where


Put = Callable[..., None]


def _render_python(file: CodeFile, put: Put) -> None:
    put(f'"""{file.component.capitalize()} {file.role}."""')
    put("")
    put("import logging")
    put("import time")
    put("")
    put(
        "from svc.common import db, metrics" if file.role != "common" else "from svc import metrics"
    )
    put("")
    put("log = logging.getLogger(__name__)")
    for c in file.constants:
        put(c.text, c.sid)
    for f in file.functions:
        put("")
        put("")
        put(f"def {f.name}({', '.join(f.params)}):")
        for s in f.body:
            put(f"    {s.text}", s.sid)


def _render_java(file: CodeFile, put: Put) -> None:
    package = file.path.removeprefix("src/main/java/").removeprefix("src/test/java/")
    put(f"package {package.rsplit('/', 1)[0].replace('/', '.')};")
    put("")
    put("import java.util.*;")
    put("")
    put(f"public final class {file.cls} {{")
    for c in file.constants:
        put(f"    {c.text}", c.sid)
    for f in file.functions:
        put("")
        params = ", ".join(f"String {p}" for p in f.params)
        put(f"    public Object {f.name}({params}) {{")
        for s in f.body:
            put(f"        {s.text}", s.sid)
        put("    }")
    put("}")


def _render_js(file: CodeFile, put: Put) -> None:
    put('"use strict";')
    put("")
    put(
        'const db = require("../common/db");'
        if file.role != "common"
        else 'const pg = require("pg");'
    )
    for c in file.constants:
        put(c.text, c.sid)
    for f in file.functions:
        put("")
        put(f"async function {f.name}({', '.join(f.params)}) {{")
        for s in f.body:
            put(f"  {s.text}", s.sid)
        put("}")
    put("")
    put(f"module.exports = {{ {', '.join(f.name for f in file.functions)} }};")


def snapshot(service: Service, paths: Sequence[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in paths:
        if path in service.code:
            files[path] = render(service.code[path])[0]
        else:
            files[path] = "\n".join(service.text[path]) + "\n"
    return files


def all_paths(service: Service) -> list[str]:
    return sorted([*service.code, *service.text])


def locate_statement(service: Service, sid: int) -> tuple[CodeFile, Function, int]:
    """The file, function and current line of a statement."""
    for file in service.code.values():
        for f in file.functions:
            if any(s.sid == sid for s in f.body):
                return file, f, render(file)[1][sid]
    raise KeyError(sid)


# --- edits: what one commit does -------------------------------------------------------------------


@dataclass
class Edit:
    """What an edit changed: the paths and a commit subject for it."""

    subject: str
    paths: set[str]


PHRASES = (
    "handle empty {noun} lists in {fn}",
    "log {fn} inputs at info level",
    "tighten {noun} filtering in {fn}",
    "sort {noun}s by {field} in {fn}",
    "cap {noun} results in {fn}",
    "skip {noun}s without {field}",
    "record a metric for {fn}",
    "simplify {fn}",
)


def editable(f: Function, protected: set[int]) -> list[int]:
    """Indexes of statements an innocent may change: not the return, not protected ones."""
    return [i for i, s in enumerate(f.body[:-1]) if s.sid not in protected and s.calls is None]


def edit_function(
    service: Service, rng: random.Random, file: CodeFile, f: Function, protected: set[int]
) -> Edit:
    """Modify, insert or delete one to three statements of ``f``."""
    nouns = COMPONENTS.get(file.component, ("row",))
    noun, param = rng.choice(nouns), f.params[0] if f.params else "value"
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        choices = editable(f, protected)
        mode = rng.choice(("modify", "insert", "delete") if len(choices) > 2 else ("insert",))
        if mode == "insert" or not choices:
            f.body.insert(
                rng.randint(0, len(f.body) - 1), plain_statement(service, rng, noun, param)
            )
        elif mode == "modify":
            i = rng.choice(choices)
            f.body[i] = Statement(f.body[i].sid, plain_statement(service, rng, noun, param).text)
        else:
            del f.body[rng.choice(choices)]
    subject = rng.choice(PHRASES).format(noun=noun, fn=f.name, field=rng.choice(FIELDS))
    return Edit(f"{file.component}: {subject}", {file.path})


def add_function(service: Service, rng: random.Random, file: CodeFile) -> Edit:
    taken = {f.name for g in service.code.values() for f in g.functions}
    f = new_function(service, rng, file.component, [], taken)
    file.functions.insert(rng.randint(0, len(file.functions)), f)
    return Edit(f"{file.component}: add {f.name}", {file.path})


def refactor(service: Service, rng: random.Random, file: CodeFile, protected: set[int]) -> Edit:
    """A large change: most statements of most functions rewritten."""
    nouns = COMPONENTS.get(file.component, ("row",))
    for f in file.functions:
        for i in editable(f, protected):
            if rng.random() < 0.7:
                text = plain_statement(service, rng, rng.choice(nouns), f.params[0]).text
                f.body[i] = Statement(f.body[i].sid, text)
        for _ in range(rng.randint(0, 3)):
            statement = plain_statement(service, rng, rng.choice(nouns), f.params[0])
            f.body.insert(rng.randint(0, len(f.body) - 1), statement)
    name = file.path.rsplit("/", 1)[-1]
    return Edit(f"{file.component}: restructure {name} for readability", {file.path})


def edit_text(service: Service, rng: random.Random, path: str, subject: str) -> Edit:
    lines = service.text[path]
    if rng.random() < 0.6 or len(lines) < 3:
        lines.append(f"- {rng.choice(VERBS)} {rng.choice(FIELDS)} ({rng.randint(1, 99)})")
    else:
        lines[rng.randrange(1, len(lines))] += " (updated)"
    return Edit(subject, {path})


def edit_docs(service: Service, rng: random.Random) -> Edit:
    path = rng.choice([p for p in service.text if p.endswith(".md")])
    return edit_text(service, rng, path, f"docs: clarify {path.rsplit('/', 1)[-1]}")


def edit_tests(service: Service, rng: random.Random) -> Edit:
    file = rng.choice([f for f in service.code.values() if f.role == "test"])
    svc = service.code[code_path(service.language, file.component, "service")]
    file.functions.append(test_function(service, rng, rng.choice(svc.functions).name))
    return Edit(f"{file.component}: more tests", {file.path})


def edit_build(service: Service, rng: random.Random) -> Edit:
    if rng.random() < 0.5:
        return edit_text(
            service, rng, ".github/workflows/ci.yml", "ci: run the tests on every push"
        )
    path = dependency_file(service.language)
    lines = service.text[path]
    index = rng.choice([i for i, line in enumerate(lines) if any(c.isdigit() for c in line)])
    lines[index] = lines[index].replace(".", f".{rng.randint(0, 9)}", 1)
    return Edit("deps: bump a library", {path})


def edit_dispatch(service: Service, rng: random.Random, component: str) -> Edit:
    """Change one of the server's routes of a component (an outer frame of its traces)."""
    server = service.code[code_path(service.language, "", "server")]
    dispatch = server.functions[0]
    routes = [i for i, s in enumerate(dispatch.body) if f'"/{component}/' in s.text]
    i = rng.choice(routes)
    s = dispatch.body[i]
    call = f"{component}.{s.calls}(request)"
    wrapped = s.text.replace(call, f"timed({component}.{s.calls}, request)")
    if wrapped == s.text:
        wrapped = s.text.replace("timed(", "traced(")
    dispatch.body[i] = Statement(s.sid, wrapped, s.calls)  # same slot, new text
    return Edit(f"server: time {s.calls} requests", {server.path})


# --- incidents -------------------------------------------------------------------------------------


@dataclass
class Incident:
    """One generated regression and what the agent would know about it."""

    number: int
    repo: Path
    language: str
    kind: str
    component: str
    component_paths: tuple[str, ...]
    healthy: str | None
    head: str
    onset: datetime
    culprit: str
    culprit_file: str
    release: tuple[str, ...]
    frames: tuple[Frame, ...]
    operations: tuple[str, ...]
    pattern_files: frozenset[str]
    tags: dict[str, object] = field(default_factory=dict)


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def kebab(name: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return "-".join(w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w)


def _callers(
    service: Service, callee: str, role: str, component: str
) -> list[tuple[CodeFile, Function, Statement]]:
    """Statements calling ``callee`` from the component's files of ``role``."""
    found: list[tuple[CodeFile, Function, Statement]] = []
    for file in service.code.values():
        if file.role == role and file.component == component:
            for f in file.functions:
                found.extend((file, f, s) for s in f.body if s.calls == callee)
    return found


@dataclass
class Culprit:
    """Where the regression goes, and the call path its failing requests take."""

    file: CodeFile
    function: Function
    chain: list[tuple[CodeFile, Function, int]]  # from the service in; the last is innermost
    slot: int | None  # the statement the culprit rewrites (None: it inserts one)
    innermost_at_change: bool
    downstream: int | None = None  # the unchanged statement that raises further down
    operation_function: str = ""


Link = tuple[CodeFile, Function, int]  # a frame to be: file, function, statement id


def choose_culprit(service: Service, rng: random.Random, component: str, scope: str) -> Culprit:
    """Pick the culprit's function and the path of the failing requests through it.

    The path is outer first and ends at the line that raises: the culprit's own
    line (id -1 until it is written) or, downstream, an unchanged line it reaches.
    """
    if scope == "shared":
        culprit = _shared_culprit(service, rng, component)
        if culprit is not None:
            return culprit
        scope = "store"
    if scope == "store":
        culprit = _store_culprit(service, rng, component)
        if culprit is not None:
            return culprit
    return _service_culprit(service, rng, component)


def _files(service: Service, component: str) -> tuple[CodeFile, CodeFile, CodeFile]:
    lang = service.language
    return (
        service.code[code_path(lang, component, "service")],
        service.code[code_path(lang, component, "store")],
        service.code[code_path(lang, "", "common")],
    )


def _shared_culprit(service: Service, rng: random.Random, component: str) -> Culprit | None:
    svc, store, db = _files(service, component)
    options = [
        (target, g, into_db, f, into_store)
        for target in db.functions
        for _, g, into_db in _callers(service, target.name, "store", component)
        for _, f, into_store in _callers(service, g.name, "service", component)
    ]
    if not options:
        return None
    target, g, into_db, f, into_store = rng.choice(options)
    chain = [(svc, f, into_store.sid), (store, g, into_db.sid), (db, target, -1)]
    return Culprit(db, target, chain, _slot(rng, target), True, operation_function=f.name)


def _store_culprit(service: Service, rng: random.Random, component: str) -> Culprit | None:
    svc, store, db = _files(service, component)
    options = [
        (g, f, call)
        for g in store.functions
        for _, f, call in _callers(service, g.name, "service", component)
    ]
    if not options:
        return None
    g, f, into_store = rng.choice(options)
    chain: list[Link] = [(svc, f, into_store.sid), (store, g, -1)]
    culprit = Culprit(
        store, g, chain, _slot(rng, g), rng.random() < 0.75, operation_function=f.name
    )
    if not culprit.innermost_at_change:
        _raise_downstream(rng, culprit, store, g, db)
    return culprit


def _service_culprit(service: Service, rng: random.Random, component: str) -> Culprit:
    svc, store, _ = _files(service, component)
    f = rng.choice(svc.functions)
    culprit = Culprit(
        svc, f, [(svc, f, -1)], _slot(rng, f), rng.random() < 0.6, operation_function=f.name
    )
    downstream = not culprit.innermost_at_change and _raise_downstream(rng, culprit, svc, f, store)
    if downstream and rng.random() < 0.4:  # the change is the call itself (new arguments)
        culprit.slot = culprit.chain[-2][2]
    return culprit


def _raise_downstream(
    rng: random.Random, culprit: Culprit, file: CodeFile, caller: Function, callee_file: CodeFile
) -> bool:
    """Make the failure surface in an unchanged line of the function ``caller`` calls."""
    call = next((s for s in caller.body if s.calls), None)
    callee = next((g for g in callee_file.functions if call and g.name == call.calls), None)
    old = editable(callee, set()) if callee else []
    if call is None or callee is None or not old:
        culprit.innermost_at_change = True
        return False
    culprit.chain[-1] = (file, caller, call.sid)
    culprit.downstream = callee.body[rng.choice(old)].sid
    culprit.chain.append((callee_file, callee, culprit.downstream))
    return True


def _slot(rng: random.Random, f: Function) -> int | None:
    choices = editable(f, set())
    return f.body[rng.choice(choices)].sid if choices and rng.random() < 0.5 else None


def apply_culprit(
    service: Service, rng: random.Random, kind: str, culprit: Culprit, protected: set[int]
) -> tuple[Edit, int]:
    """Write the regression into the culprit's function; the statement id it now has."""
    f, lang = culprit.function, service.language
    nouns = COMPONENTS.get(culprit.file.component, ("row",))
    text = _fill(rng.choice(REGRESSIONS[lang][kind]), rng, rng.choice(nouns), f.params[0])
    index = next((i for i, s in enumerate(f.body) if s.sid == culprit.slot), None)
    if index is not None and f.body[index].calls:
        text = _with_argument(f.body[index].text, f"normalized({f.params[0]})")
    if index is None:
        statement = Statement(service.sid(), text)
        f.body.insert(rng.randint(0, len(f.body) - 1), statement)
    else:
        statement = Statement(f.body[index].sid, text, f.body[index].calls)
        f.body[index] = statement
    protected.add(statement.sid)
    edit = Edit(
        f"{culprit.file.component}: {_culprit_subject(rng, kind, f.name)}", {culprit.file.path}
    )
    if rng.random() < 0.3:  # more lines in the same function
        edit.paths |= edit_function(service, rng, culprit.file, f, protected).paths
    if rng.random() < 0.15:  # and elsewhere in the file: a bigger change
        others = [g for g in culprit.file.functions if g is not f]
        for g in rng.sample(others, min(len(others), rng.randint(1, 3))):
            edit_function(service, rng, culprit.file, g, protected)
    if rng.random() < 0.4:
        edit.paths |= edit_tests(service, rng).paths
    if rng.random() < 0.1:
        edit.paths |= edit_docs(service, rng).paths
    return edit, statement.sid


def _with_argument(call: str, argument: str) -> str:
    return re.sub(r"\(([^()]*)\)", f"({argument})", call, count=1)


CULPRIT_SUBJECTS = {
    "latency": (
        "load fresh {noun} data in {fn}",
        "make {fn} consistent with the database",
        "retry {fn} on transient failures",
    ),
    "errors": (
        "support the new {noun} format in {fn}",
        "validate {noun} input in {fn}",
        "read the currency from the request in {fn}",
    ),
    "memory": ("cache {noun} results of {fn}", "keep a history of {fn} calls for debugging"),
}


def _culprit_subject(rng: random.Random, kind: str, fn: str) -> str:
    return rng.choice(CULPRIT_SUBJECTS[kind]).format(noun=rng.choice(FIELDS), fn=fn)


INNOCENTS = {
    "other_component": 0.30,
    "same_component": 0.14,
    "same_file": 0.08,
    "add_function": 0.05,
    "docs": 0.10,
    "tests": 0.10,
    "build": 0.07,
    "refactor": 0.05,
    "dispatch": 0.04,
    "shared": 0.04,
    "constant": 0.03,
}


def innocent_edit(
    service: Service,
    rng: random.Random,
    kind: str,
    component: str,
    culprit: Culprit | None,
    protected: set[int],
) -> Edit:
    """One innocent commit's edit of the given kind, around ``component`` (and the culprit)."""
    lang = service.language
    avoid = culprit.function if culprit else None
    mine = [
        f
        for f in service.code.values()
        if f.component == component and f.role in ("service", "store")
    ]
    others = [
        f
        for f in service.code.values()
        if f.component != component and f.role in ("service", "store")
    ]
    if kind == "other_component":
        file = rng.choice(others)
        return edit_function(service, rng, file, rng.choice(file.functions), protected)
    if kind == "same_component":
        file = rng.choice(mine)
        options = [g for g in file.functions if g is not avoid] or file.functions
        return edit_function(service, rng, file, rng.choice(options), protected)
    if kind == "same_file" and culprit is not None:
        file = culprit.file
        options = [g for g in file.functions if g is not culprit.function]
        target = culprit.function if rng.random() < 0.3 or not options else rng.choice(options)
        return edit_function(service, rng, file, target, protected)
    if kind == "add_function":
        return add_function(service, rng, rng.choice(mine + others))
    if kind == "docs":
        return edit_docs(service, rng)
    if kind == "tests":
        return edit_tests(service, rng)
    if kind == "build":
        return edit_build(service, rng)
    if kind == "refactor":
        pool = [*others, service.code[code_path(lang, "", "common")]]
        return refactor(service, rng, rng.choice(pool), protected)
    if kind == "dispatch":
        return edit_dispatch(service, rng, component)
    if kind == "shared":
        db = service.code[code_path(lang, "", "common")]
        return edit_function(service, rng, db, rng.choice(db.functions), protected)
    file = rng.choice(mine + others)
    file.constants[0] = Statement(
        file.constants[0].sid, constant(lang, "LIMIT", rng.choice((50, 200, 500)))
    )
    return Edit(f"{file.component}: change the result limit", {file.path})


def touch_downstream(service: Service, rng: random.Random, culprit: Culprit) -> Edit:
    """An innocent change to the very line the downstream exception is raised from."""
    file, f, sid = culprit.chain[-1]
    nouns = COMPONENTS.get(file.component, ("row",))
    for i, s in enumerate(f.body):
        if s.sid == sid:
            text = plain_statement(service, rng, rng.choice(nouns), f.params[0]).text
            f.body[i] = Statement(sid, text)
    return Edit(f"{file.component}: reword a message in {f.name}", {file.path})


# --- traces ----------------------------------------------------------------------------------------

PY_PREFIX = "/srv/shop/releases/{release}/"
JS_PREFIX = "/app/"
MESSAGES = {"errors": "invalid value", "latency": "deadline exceeded", "memory": "cannot allocate"}


def trace_text(
    service: Service,
    chain: Sequence[tuple[CodeFile, Function, int]],
    kind: str,
    release: str,
    rng: random.Random,
) -> str:
    """A stack trace of the failing requests as the runtime prints it, at the current revision."""
    lang = service.language
    frames = [(file, f, render(file)[1][sid]) for file, f, sid in chain]
    exception = f"{EXCEPTIONS[lang][kind]}: {MESSAGES[kind]}"
    library = rng.random() < 0.5
    if lang == "python":
        rows = ["Traceback (most recent call last):"]
        if library:
            rows.append('  File "/usr/lib/python3.11/socketserver.py", line 720, in __init__')
        for file, f, line in frames:
            rows.append(
                f'  File "{PY_PREFIX.format(release=release)}{file.path}", line {line}, in {f.name}'
            )
        return "\n".join([*rows, exception])
    if lang == "java":
        rows = [exception]
        for file, f, line in reversed(frames):
            package = file.path.removeprefix("src/main/java/").rsplit("/", 1)[0].replace("/", ".")
            rows.append(f"\tat {package}.{file.cls}.{f.name}({file.cls}.java:{line})")
        if library:
            rows.append("\tat java.base/java.lang.Thread.run(Thread.java:833)")
        return "\n".join(rows)
    rows = [exception]
    for depth, (file, f, line) in enumerate(reversed(frames)):
        prefix = "async " if depth and rng.random() < 0.5 else ""
        rows.append(f"    at {prefix}{f.name} ({JS_PREFIX}{file.path}:{line}:{rng.randint(3, 30)})")
    if library:
        rows.append(
            "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"
        )
    return "\n".join(rows)


def merged_frames(traces: Sequence[str], limit: int = 20) -> tuple[Frame, ...]:
    """Frames of several traces as a window keeps them: first seen first, each once."""
    frames: list[Frame] = []
    for trace in traces:
        for frame in parse_stack_text(trace):
            entry = Frame(frame.file, frame.line, frame.function)
            if entry not in frames and len(frames) < limit:
                frames.append(entry)
    return tuple(frames)


def operation_name(rng: random.Random, language: str, component: str, function: str) -> str:
    if rng.random() < 0.5:
        return f"POST /{component}/{kebab(function)}"
    if language == "java":
        return f"{component.capitalize()}Service.{function}"
    return f"{component}.{function}"


# --- git -------------------------------------------------------------------------------------------


@dataclass
class CommitSpec:
    """One commit for ``git fast-import``."""

    author: tuple[str, str]
    when: datetime
    message: str
    files: dict[str, str]


def git_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C",
        "HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }


def init_repository(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--quiet", "--initial-branch=main", str(path)],
        check=True,
        env=git_env(),
    )


def fast_import(
    repo: Path, branch: str, parent: str | None, commits: Sequence[CommitSpec]
) -> list[str]:
    """Write ``commits`` on ``branch`` (from ``parent``) and return their ids in order."""
    stream = bytearray()
    for index, spec in enumerate(commits, start=1):
        name, email = spec.author
        stamp = int(spec.when.timestamp())
        message = spec.message.encode()
        stream += f"commit refs/heads/{branch}\nmark :{index}\n".encode()
        stream += f"author {name} <{email}> {stamp} +0000\n".encode()
        stream += f"committer {name} <{email}> {stamp} +0000\n".encode()
        stream += f"data {len(message)}\n".encode() + message + b"\n"
        if index == 1 and parent is not None:
            stream += f"from {parent}\n".encode()
        for path, text in sorted(spec.files.items()):
            content = text.encode()
            stream += f"M 100644 inline {path}\ndata {len(content)}\n".encode() + content + b"\n"
        stream += b"\n"
    marks = repo / ".git" / f"marks-{branch.replace('/', '-')}"
    subprocess.run(
        ["git", "-C", str(repo), "fast-import", "--quiet", f"--export-marks={marks}"],
        input=bytes(stream),
        check=True,
        env=git_env(),
        capture_output=True,
    )
    ids = dict(line.split(" ", 1) for line in marks.read_text().splitlines())
    marks.unlink()
    return [ids[f":{i}"].strip() for i in range(1, len(commits) + 1)]


# --- the corpus ------------------------------------------------------------------------------------


@dataclass
class Base:
    """A base repository: the service model at its head, the head commit and its time."""

    repo: Path
    service: Service
    head: str
    head_time: datetime


def build_base(root: Path, rng: random.Random, language: str, number: int) -> Base:
    """A repository with an initial import and a history of edits by several authors."""
    service = build_service(rng, language)
    repo = root / f"base-{number:02d}-{language}"
    init_repository(repo)
    authors = rng.sample(AUTHORS, rng.randint(4, 7))
    times = [EPOCH - timedelta(days=60)]
    times += [
        EPOCH - timedelta(days=60 - 56 * i / (BASE_HISTORY - 8)) for i in range(1, BASE_HISTORY - 8)
    ]
    times += [EPOCH - timedelta(hours=72 - 66 * i / 8) for i in range(8)]
    specs = [
        CommitSpec(
            authors[0], times[0], "Import the shop service", snapshot(service, all_paths(service))
        )
    ]
    kinds = {k: w for k, w in INNOCENTS.items() if k not in ("dispatch", "same_file")}
    for when in times[1:]:
        component = rng.choice(service.components)
        edit = innocent_edit(service, rng, _weighted(rng, kinds), component, None, set())
        specs.append(
            CommitSpec(
                rng.choice(authors), when, edit.subject, snapshot(service, sorted(edit.paths))
            )
        )
    head = fast_import(repo, "main", None, specs)[-1]
    return Base(repo, service, head, times[-1])


def release_size(rng: random.Random) -> int:
    """How many innocent commits ship with the culprit."""
    band = _weighted(rng, {"small": 0.3, "medium": 0.45, "large": 0.2, "huge": 0.05})
    low, high = {"small": (1, 3), "medium": (4, 8), "large": (9, 16), "huge": (17, 30)}[band]
    return rng.randint(low, high)


def make_incident(base: Base, rng: random.Random, number: int) -> Incident:
    """One release on its own branch of ``base`` with one culprit, and what telemetry shows."""
    service = copy.deepcopy(base.service)
    lang = service.language
    kind = _weighted(rng, {"latency": 0.4, "errors": 0.4, "memory": 0.2})
    component = rng.choice(service.components)
    scope = _weighted(rng, {"service": 0.42, "store": 0.44, "shared": 0.14})
    culprit = choose_culprit(service, rng, component, scope)
    protected = {s for s in (culprit.slot, culprit.downstream) if s is not None}
    innocents = [_weighted(rng, INNOCENTS) for _ in range(release_size(rng))]
    touch_raise_line = culprit.downstream is not None and rng.random() < 0.15
    if touch_raise_line:
        innocents[rng.randrange(len(innocents))] = "touch_downstream"
    position = rng.randint(0, len(innocents))
    authors = rng.sample(AUTHORS, rng.randint(2, 5))
    specs: list[CommitSpec] = []
    raise_sid = -1
    start = base.head_time + timedelta(hours=rng.randint(2, 20))
    for index in range(len(innocents) + 1):
        when = start + timedelta(minutes=17 * index + rng.randint(0, 10))
        if index == position:
            edit, raise_sid = apply_culprit(service, rng, kind, culprit, protected)
        elif innocents[index - (index > position)] == "touch_downstream":
            edit = touch_downstream(service, rng, culprit)
        else:
            choice = innocents[index - (index > position)]
            edit = innocent_edit(service, rng, choice, component, culprit, protected)
        specs.append(
            CommitSpec(
                rng.choice(authors), when, edit.subject, snapshot(service, sorted(edit.paths))
            )
        )
    shas = fast_import(base.repo, f"incident-{number:03d}", base.head, specs)
    onset = specs[-1].when + timedelta(minutes=rng.randint(5, 40))
    chain = [route_of(service, component, culprit.operation_function)]
    chain += [(file, f, raise_sid if sid == -1 else sid) for file, f, sid in culprit.chain]
    traced = rng.random() < {"errors": 0.85, "latency": 0.25, "memory": 0.2}[kind]
    traces: list[str] = []
    if traced:
        traces.append(trace_text(service, chain, kind, f"r{number}", rng))
        if rng.random() < 0.25:
            traces.insert(rng.randint(0, 1), noise_trace(service, rng, component, culprit, number))
    # Request logs usually name the route; a memory regression is seen on the process instead.
    named = rng.random() < {"errors": 0.6, "latency": 0.8, "memory": 0.2}[kind]
    operations = (
        (operation_name(rng, lang, component, culprit.operation_function),) if named else ()
    )
    patterns: frozenset[str] = frozenset()
    if rng.random() < 0.15:
        mine = [
            f.path for f in service.code.values() if f.component == component and f.role != "test"
        ]
        patterns = frozenset({culprit.file.path if rng.random() < 2 / 3 else rng.choice(mine)})
    versions_known = rng.random() < 0.8
    return Incident(
        number=number,
        repo=base.repo,
        language=lang,
        kind=kind,
        component=component,
        component_paths=service.component_paths(component),
        healthy=base.head if versions_known else None,
        head=shas[-1],
        onset=onset,
        culprit=shas[position],
        culprit_file=culprit.file.path,
        release=tuple(shas),
        frames=merged_frames(traces),
        operations=operations,
        pattern_files=patterns,
        tags={
            "scope": "shared" if culprit.file.role == "common" else culprit.file.role,
            "traced": traced,
            "raised_at_change": traced and culprit.innermost_at_change,
            "raise_line_touched_by_innocent": traced and touch_raise_line,
            "operations": named,
            "versions_known": versions_known,
            "release_commits": len(shas),
            "culprit_position": position,
            "same_component_innocents": sum(
                k in ("same_component", "same_file") for k in innocents
            ),
            "pattern": bool(patterns),
        },
    )


def noise_trace(
    service: Service, rng: random.Random, component: str, culprit: Culprit, number: int
) -> str:
    """A long-standing error of another operation of the same component."""
    lang = service.language
    svc = service.code[code_path(lang, component, "service")]
    options = [f for f in svc.functions if f is not culprit.function and editable(f, set())]
    f = rng.choice(options or svc.functions)
    statement = rng.choice(f.body[:-1] or f.body)
    return trace_text(
        service,
        [route_of(service, component, f.name), (svc, f, statement.sid)],
        "errors",
        f"r{number}",
        rng,
    )


def generate(root: Path, incidents: int, seed: int, bases_per_language: int = 2) -> list[Incident]:
    """``incidents`` incidents over ``3 * bases_per_language`` base repositories under ``root``."""
    rng = random.Random(seed)
    bases = [
        build_base(root, random.Random(rng.random()), language, number)
        for number, language in enumerate(LANGUAGES * bases_per_language)
    ]
    return [
        make_incident(bases[i % len(bases)], random.Random(rng.random()), i)
        for i in range(incidents)
    ]
