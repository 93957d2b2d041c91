"""Spec text is data, never code: injection payloads in every slot of the grammar, no dynamic
evaluation of spec-derived text while the real specs load, compile and run, and a source lint.

Three parts:

1. A corpus of injection payloads (PAYLOADS) placed, from templates (SLOTS), in every identifier
   and expression slot of the grammar. Each (slot, payload) pair has a decided outcome
   (`expected_outcome`): almost all are rejected with a SpecError located at file:line:col on a
   line the payload occupies; a few are valid harmless specs (a bare identifier such as `exec`
   as a declared name, any text inside the title string or a comment), which must compile to
   exactly the code of the same spec with a neutral name there. Payloads try to create a
   sentinel file; it must never exist.
2. `eval`, `exec`, `compile`, `sympify`, `parse_expr` and `lambdify` are wrapped while every spec
   in specs/ is loaded, compiled and run forward once; a call whose text holds the spec source, a
   statement of it or one of its identifiers is a violation. The specs are also run with every
   user identifier renamed to a marker (`zqx...`) that nothing else contains, which makes the
   identifier check exact. The runtime's one `exec` of GENERATED source must pass (and is seen).
3. A lint of the package sources: the only call of eval/exec/compile/sympify/parse_expr/lambdify
   is the `exec(compile(source, ...))` in runtime/library.py.

`IMPSOLVE_RELIABILITY_DIR=<dir>` makes the tests write their figures to <dir>/security.json
(tools/reliability_report.py reads them).
"""
from __future__ import annotations

import builtins
import importlib
import io
import json
import keyword
import os
import re
import subprocess
import sys
import tokenize
import types
from collections import Counter
from pathlib import Path

import pytest

import impsolve
from impsolve.api import Problem
from impsolve.dsl import SpecError, check, parse
from impsolve.dsl.functions import RESERVED

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.imp"))
PACKAGE_DIRS = ("impsolve", "dsl", "compiler", "runtime")   # see [tool.setuptools.package-dir]
FILENAME = "payload.imp"


def record(**figures) -> None:
    """Merge figures into $IMPSOLVE_RELIABILITY_DIR/security.json (for tools/reliability_report.py)."""
    folder = os.environ.get("IMPSOLVE_RELIABILITY_DIR")
    if not folder:
        return
    path = Path(folder) / "security.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(figures)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


# ------------------------------------------------------------------------------------- payloads
# {S} is replaced by the sentinel path. Each payload would create the sentinel, or do something
# else a spec must never do, if any part of impsolve evaluated it as Python.
HOSTILE = {
    "import system": "__import__('os').system('touch {S}')",
    "import system dq": '__import__("os").system("touch {S}")',
    "import popen": "__import__('subprocess').Popen(['touch', '{S}'])",
    "subclasses chain": "().__class__.__bases__[0].__subclasses__()",
    "subclasses via str": "''.__class__.__mro__[1].__subclasses__()",
    "subclasses bare": "__subclasses__",
    "subclasses call": "__subclasses__()",
    "class of name": "x.__class__",
    "getattr dunder": "getattr(x, '__class__')",
    "builtins": "__builtins__",
    "builtins open": "__builtins__.open('{S}', 'w')",
    "globals subscript": "globals()['__builtins__']",
    "dunder dict": "__dict__",
    "dunder globals": "w.__globals__",
    "dunder init": "__init__",
    "dunder name": "__name__",
    "lambda": "lambda: open('{S}', 'w')",
    "lambda called": "(lambda: __import__('os').system('touch {S}'))()",
    "lambda arg": "lambda x: x",
    "f-string": "f'{open(\"{S}\", \"w\")}'",
    "f-string dq": 'f"{__import__(\'os\').system(\'touch {S}\')}"',
    "format attr": "'{0.__class__}'.format(x)",
    "semicolon import": "1; import os; os.system('touch {S}')",
    "semicolon call": "1; open('{S}', 'w')",
    "exec call": "exec(\"open('{S}', 'w')\")",
    "exec bytes": "exec(b'import os')",
    "eval call": "eval(\"__import__('os').system('touch {S}')\")",
    "eval nested": "eval(eval('1'))",
    "compile call": "compile('open(1)', 'f', 'exec')",
    "open write": "open('{S}', 'w').write('x')",
    "open read": "open('/etc/passwd').read()",
    "backticks": "`touch {S}`",
    "shell subst": "$(touch {S})",
    "import statement": "import os",
    "from import": "from os import system",
    "os system": "os.system('touch {S}')",
    "sympify call": "sympify('x')",
    "sympy S": "S('exp(1)')",
    "torch load": "torch.load('{S}')",
    "walrus": "(y := 1)",
    "comprehension": "[c for c in ().__class__.__base__.__subclasses__()]",
    "dict literal": "{'a': 1}",
    "ternary": "x if 1 else y",
    "attribute": "x.real",
    "star args": "*args",
    "double star": "**kwargs",
    "keyword": "import",
    "string quote break": "\"; import os; \"",
    "single quote break": "'; import os #",
    "newline injection": "1\n__import__('os').system('touch {S}')",
    "carriage return": "1\r__import__('os').system('touch {S}')",
    "comment then code": "1 # ok\nimport os",
    "backslash newline": "1 \\\nimport os",
    "null byte": "x\x00__import__('os')",
    "null only": "\x00",
    "homoglyph cyrillic": "\u0445",                       # Cyrillic 'х' for 'x'
    "homoglyph name": "\u0440\u0430r\u0430m",            # 'раrаm'
    "homoglyph greek": "p\u03bflicy",                     # Greek omicron
    "fullwidth": "\uff58",
    "zero width": "x\u200by",
    "rtl override": "x\u202e1",
    "line separator": "x\u2028import os",
    "bom": "\ufeffx",
    "emoji": "\U0001f4a3",
    "long identifier": "a" * 10_000,
    "long call": "b" * 10_000 + "(1)",
    "overflow number": "1e999999",
    "power tower": "9^9^9^9",
    "deep parentheses": "(" * 6_000 + "1" + ")" * 6_000,
    "deep minus": "-" * 5_000 + "1",
    "percent format": "%(x)s",
    "dollar brace": "${x}",
}
# Bare identifiers: hostile in expression slots (undefined names), harmless as a declared name:
# Python builtins, SymPy names and the generated code's own names (they must not collide).
BARE = {f"bare {n}": n for n in ("exec", "eval", "compile", "open", "globals", "getattr", "os", "system",
                                 "E", "I", "S", "N", "oo", "zoo", "nan", "Symbol",
                                 "torch", "build", "nets", "params", "s0", "sT", "c0", "p_0", "net_0", "y_0")}
PAYLOADS = {**HOSTILE, **BARE}

# ---------------------------------------------------------------------------------- templates
# Valid specs covering every statement; each slot below replaces one part with {P}.
MAIN = """\
problem demo "A demo"
const a = 2, v[2] = [1, 2]
param k = 0.5
state x = 1, y = 0
def w(z) = z^2 + a
let r = k*x
net head(y): mlp(hidden=[4], act=tanh)
control u = 0.1*head(y)
der(x) = -k*x + u
der(y) = r + w(x)
horizon 1
minimize x(T)^2 + integral(u^2)
solve ode(method=dopri5, rtol=1e-6)
train adam(lr=0.01, steps=5)
batch 1
expect x(T) < 10
expect x == x over x in [0, 1] tol 1 rms
plot u over y in [0, 1]
"""
STOP = """\
state x = 0, y = 0
der(x) = 1
der(y) = 1
stop when y >= 1 within 2
minimize x at stop
"""
LQR = """\
state x = 0.1, v = 0
control u = -x - v
der(x) = v
der(v) = u
horizon 1
minimize integral(x^2 + u^2)
reference lqr(Q=diag(1, 1), R=1, max_ratio=2) at x=0, v=0
"""
IMPLICIT = """\
param c = 0.3
solve q: q = tanh(0.5*q + c) using newton(tol=1e-10)
minimize (q - 0.2)^2
expect q < 1
"""
RANDOM = """\
state p ~ normal(0, 1)
batch 4
der(p) = -p
horizon 1
minimize mean(p(T)^2)
"""


def slot(base: str, old: str, new: str) -> str:
    assert base.count(old) == 1, old
    return base.replace(old, new)


def added(base: str, line: str) -> str:
    return base + line + "\n"


# Identifier slots that declare a name: a bare identifier there is a valid, harmless spec.
DECLARING = {
    "problem name": slot(MAIN, "problem demo", "problem {P}"),
    "const name": added(MAIN, "const {P} = 2"),
    "param name": added(MAIN, "param {P} = 0.5"),
    "state name": added(MAIN, "state {P} = 0\nder({P}) = 1"),
    "def name": added(MAIN, "def {P}(z) = 2*z"),
    "def parameter": added(MAIN, "def w2({P}) = 2*{P}"),
    "let name": added(MAIN, "let {P} = k*x"),
    "control name": added(MAIN, "control {P} = 0.1*x"),
    "net name": added(MAIN, "net {P}(x): mlp(hidden=[2])"),
    "net input": added(MAIN, "net h2({P}): mlp(hidden=[2])"),
    "implicit unknown": slot(IMPLICIT, "solve q: q = tanh(0.5*q + c)", "solve {P}: {P} = tanh(0.5*{P} + c)")
    .replace("(q - 0.2)", "({P} - 0.2)").replace("expect q", "expect {P}"),
}
# Slots that refer to a name, name an option or a setting, or hold an expression or a number:
# every payload is rejected (none of the bare identifiers is declared or known there).
REFERRING = {
    "der target": slot(MAIN, "der(y) = r", "der({P}) = r"),
    "over variable": slot(MAIN, "over x in", "over {P} in"),
    "plot variable": slot(MAIN, "over y in", "over {P} in"),
    "reference at name": slot(LQR, "at x=0", "at {P}=0"),
    "solve option name": slot(MAIN, "rtol=1e-6", "{P}=1e-6"),
    "train option name": slot(MAIN, "steps=5", "{P}=5"),
    "net option name": slot(MAIN, "hidden=[4]", "{P}=[4]"),
    "newton option name": slot(IMPLICIT, "tol=1e-10", "{P}=1e-10"),
    "lqr option name": slot(LQR, "max_ratio=2", "{P}=2"),
    "call keyword": slot(MAIN, "let r = k*x", "let r = sin({P}=x)"),
    "solve setting": slot(MAIN, "solve ode(", "solve {P}("),
    "train setting": slot(MAIN, "train adam(", "train {P}("),
    "net setting": slot(MAIN, ": mlp(", ": {P}("),
    "implicit setting": slot(IMPLICIT, "using newton(", "using {P}("),
    "reference kind": slot(LQR, "reference lqr(", "reference {P}("),
    "distribution": slot(RANDOM, "~ normal(", "~ {P}("),
    "function name": slot(MAIN, "let r = k*x", "let r = {P}(x)"),
    "const value": slot(MAIN, "a = 2,", "a = {P},"),
    "shape": slot(MAIN, "v[2]", "v[{P}]"),
    "array entry": slot(MAIN, "[1, 2]", "[1, {P}]"),
    "param value": slot(MAIN, "k = 0.5", "k = {P}"),
    "state value": slot(MAIN, "x = 1,", "x = {P},"),
    "distribution argument": slot(RANDOM, "normal(0, 1)", "normal(0, {P})"),
    "def body": slot(MAIN, "z^2 + a", "{P}"),
    "let value": slot(MAIN, "let r = k*x", "let r = {P}"),
    "control value": slot(MAIN, "u = 0.1*head(y)", "u = {P}"),
    "net call argument": slot(MAIN, "head(y)\n", "head({P})\n"),
    "net option value": slot(MAIN, "act=tanh", "act={P}"),
    "net hidden entry": slot(MAIN, "hidden=[4]", "hidden=[{P}]"),
    "der value": slot(MAIN, "-k*x + u", "{P}"),
    "horizon": slot(MAIN, "horizon 1", "horizon {P}"),
    "stop condition": slot(STOP, "when y >= 1", "when {P}"),
    "stop within": slot(STOP, "within 2", "within {P}"),
    "objective": slot(MAIN, "minimize x(T)^2 + integral(u^2)", "minimize {P}"),
    "objective at": slot(STOP, "minimize x at stop", "minimize x at {P}"),
    "solve option value": slot(MAIN, "method=dopri5", "method={P}"),
    "solve number value": slot(MAIN, "rtol=1e-6", "rtol={P}"),
    "train option value": slot(MAIN, "lr=0.01", "lr={P}"),
    "batch": slot(MAIN, "batch 1", "batch {P}"),
    "expect left": slot(MAIN, "expect x(T) < 10", "expect {P} < 10"),
    "expect right": slot(MAIN, "expect x(T) < 10", "expect x(T) < {P}"),
    "expect operator": slot(MAIN, "expect x(T) < 10", "expect x(T) {P} 10"),
    "expect tolerance": slot(MAIN, "tol 1 rms", "tol {P} rms"),
    "expect over low": slot(MAIN, "over x in [0, 1]", "over x in [{P}, 1]"),
    "expect over high": slot(MAIN, "over x in [0, 1]", "over x in [0, {P}]"),
    "implicit lhs": slot(IMPLICIT, "solve q: q =", "solve q: {P} ="),
    "implicit rhs": slot(IMPLICIT, "= tanh(0.5*q + c)", "= {P}"),
    "newton option value": slot(IMPLICIT, "tol=1e-10", "tol={P}"),
    "lqr Q": slot(LQR, "Q=diag(1, 1)", "Q={P}"),
    "lqr R": slot(LQR, "R=1,", "R={P},"),
    "lqr max_ratio": slot(LQR, "max_ratio=2", "max_ratio={P}"),
    "reference at value": slot(LQR, "at x=0", "at x={P}"),
    "plot expression": slot(MAIN, "plot u over", "plot {P} over"),
    "plot low": slot(MAIN, "over y in [0, 1]", "over y in [{P}, 1]"),
    "plot high": slot(MAIN, "over y in [0, 1]", "over y in [0, {P}]"),
    "statement": added(MAIN, "{P}"),
}
# Free text: the title string and a comment. Any payload that stays inside them is harmless.
TEXT = {
    "title": slot(MAIN, '"A demo"', '"{P}"'),
    "comment": added(MAIN, "# {P}"),
}
SLOTS = {**DECLARING, **REFERRING, **TEXT}
NEUTRAL = "zneutral"   # the name that a harmless payload's spec must compile exactly like
CODE_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:e[+-]?\d+)?|\S")


def expected_outcome(slot_name: str, payload: str) -> str:
    """'accept' or 'reject', decided per slot (see the module docstring)."""
    if slot_name == "title":
        return "reject" if set(payload) & {'"', "\n", "\x00"} else "accept"
    if slot_name == "comment":
        return "reject" if set(payload) & {"\n", "\x00"} else "accept"
    if slot_name in DECLARING and payload in BARE.values():
        return "accept"
    return "reject"


def fill(template: str, payload: str, sentinel: Path) -> tuple[str, set[int]]:
    """The spec with the payload in its slot, and the lines the payload occupies."""
    text = payload.replace("{S}", str(sentinel))
    parts = template.split("{P}")
    out, lines = parts[0], set()
    for part in parts[1:]:
        first = out.count("\n") + 1
        # the lexer counts lines at '\n' only (a lone '\r' does not end a line)
        lines.update(range(first, first + text.count("\n") + 1))
        out += text + part
    return out, lines


def code_tokens(source: str) -> Counter:
    """The tokens of generated code, as a multiset: equal for code that differs only in the order
    of terms."""
    return Counter(CODE_TOKEN.findall(source))


def outcome_of(text: str) -> tuple[SpecError | None, Problem | None]:
    """Parse, check and lower (which reports shape and value errors) under FILENAME."""
    try:
        return None, Problem(check(parse(text, FILENAME)))
    except SpecError as err:
        return err, None


def test_the_corpus_is_large_and_covers_every_statement():
    assert len(HOSTILE) >= 50 and len(PAYLOADS) >= 70
    assert len(SLOTS) >= 60
    for base in (MAIN, STOP, LQR, IMPLICIT, RANDOM):
        assert outcome_of(base)[0] is None, outcome_of(base)[0]
    for keyword_ in ("problem", "const", "param", "state", "def", "let", "net", "control", "der", "horizon",
                     "stop", "minimize", "solve", "train", "batch", "expect", "reference", "plot", "using", "over"):
        assert any(re.search(rf"\b{keyword_}\b[^\n]*\{{P\}}", t) for t in SLOTS.values()), keyword_
    for name, template in SLOTS.items():   # each template is a valid spec with a neutral word in place
        filled = template.replace("{P}", NEUTRAL if name in DECLARING or name in TEXT else "")
        if name in DECLARING or name in TEXT:
            assert outcome_of(filled)[0] is None, (name, outcome_of(filled)[0])


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sentinel") / "SENTINEL"


RESULTS: dict[str, dict] = {}


@pytest.mark.parametrize("slot_name", list(SLOTS))
def test_payloads_in_slot(slot_name, sentinel):
    template = SLOTS[slot_name]
    neutral = {}
    problems, counts = [], {"accept": 0, "reject": 0}
    for label, payload in PAYLOADS.items():
        text, lines = fill(template, payload, sentinel)
        want = expected_outcome(slot_name, payload)
        counts[want] += 1
        err, problem = outcome_of(text)
        if want == "reject":
            if err is None:
                problems.append(f"{label}: accepted, expected a SpecError")
                continue
            rendered = err.render()
            if err.line is None or err.column is None:
                problems.append(f"{label}: SpecError without a location: {rendered}")
            elif not rendered.startswith(f"{FILENAME}:{err.line}:{err.column}: error: "):
                problems.append(f"{label}: rendering does not start with file:line:col: {rendered[:200]}")
            elif err.line not in lines:
                problems.append(f"{label}: located on line {err.line}, the payload is on {sorted(lines)}: "
                                f"{rendered[:300]}")
            else:
                source_line = text.split("\n")[err.line - 1]
                if not 1 <= err.column <= len(source_line) + 1:
                    problems.append(f"{label}: column {err.column} outside line {err.line}: {rendered[:300]}")
        else:
            if err is not None:
                problems.append(f"{label}: rejected, expected a harmless valid spec: {err.render()[:300]}")
                continue
            # Harmless: the generated code has the very tokens of the neutral spec's (the name or
            # text never reaches it; SymPy may order the terms of a sum by name), so running it
            # runs nothing else.
            if slot_name not in neutral:
                neutral[slot_name] = code_tokens(outcome_of(fill(template, NEUTRAL, sentinel)[0])[1].source())
            if code_tokens(problem.source()) != neutral[slot_name]:
                problems.append(f"{label}: generated code differs from the neutral spec's")
    assert not sentinel.exists(), "a payload ran"
    RESULTS[slot_name] = counts
    assert not problems, f"slot {slot_name!r}:\n" + "\n".join(problems)


def test_harmless_payloads_compile_and_run_without_side_effects(sentinel):
    """One compile and forward per declaring slot with a hostile-looking name, and the title and
    comment slots with a payload that would write the sentinel if evaluated."""
    cases = [(name, "exec" if name != "implicit unknown" else "torch") for name in DECLARING]
    cases += [("title", HOSTILE["import system"]), ("comment", HOSTILE["f-string dq"])]
    for name, payload in cases:
        text, _ = fill(SLOTS[name], payload, sentinel)
        assert expected_outcome(name, payload) == "accept"
        module = impsolve.load(text).compile(device="cpu")
        value = module()
        assert value.numel() == 1 and bool(value.isfinite()), name
    assert not sentinel.exists()


def test_the_payloads_are_live_python(tmp_path):
    """Evaluated as Python, the sentinel payloads do create the sentinel: its absence means something."""
    live = ["import system", "lambda called", "f-string dq", "eval call", "open write"]
    code = "\n".join(f"eval({HOSTILE[label].replace('{S}', str(tmp_path / str(i)))!r})" for i, label in enumerate(live))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [(tmp_path / str(i)).exists() for i in range(len(live))] == [True] * len(live)


def test_record_corpus_figures():
    """Totals for the reliability report (after the slot tests of this module have run)."""
    if len(RESULTS) != len(SLOTS):
        pytest.skip("run with the slot tests")
    rejected = sum(c["reject"] for c in RESULTS.values())
    accepted = sum(c["accept"] for c in RESULTS.values())
    record(payloads=len(PAYLOADS), hostile_payloads=len(HOSTILE), slots=len(SLOTS),
           placements=rejected + accepted, rejected=rejected, harmless_accepted=accepted, executed=0)


# ------------------------------------------------------------- no dynamic evaluation of spec text
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# numbers first, so the exponent of 1e-6 is not taken for a state named e
STRING_OR_COMMENT_OR_NAME = re.compile(r'"[^"\n]*"|#[^\n]*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*')
MARKER = "zqx"


def user_identifiers(text: str) -> set[str]:
    """Every name the spec declares: problem name, consts, params, states, defs and their
    parameters, lets, controls, implicit unknowns, nets and their inputs."""
    checked = check(parse(text))
    names = {checked.name, *checked.consts, *checked.params, *checked.states, *checked.defs, *checked.lets,
             *checked.implicits, *checked.nets}
    for d in checked.defs.values():
        names.update(d.params)
    for net, _ in checked.nets.values():
        names.update(i for i in net.inputs if i not in RESERVED)   # `t` stays the built-in time
    return names


def renamed(text: str) -> str:
    """The spec with every user identifier prefixed by MARKER (strings and comments untouched)."""
    names = user_identifiers(text)
    if "problem" not in text:
        text = "problem nameless\n" + text
        names.add("nameless")

    def replace(match: re.Match) -> str:
        word = match.group()
        return MARKER + word if word in names else word
    out = STRING_OR_COMMENT_OR_NAME.sub(replace, text)
    assert MARKER in out
    return out


def text_of(value) -> str | None:
    """The text an evaluation function would evaluate (names of a code object included)."""
    if isinstance(value, (bool, int, float)) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, types.CodeType):
        parts = [value.co_filename, value.co_name, *value.co_names, *value.co_varnames]
        parts += [text_of(c) or "" for c in value.co_consts if isinstance(c, (str, bytes, types.CodeType))]
        return "\n".join(parts)
    return None


class Guard:
    """Wraps the evaluation functions; records every call whose text is spec-derived."""

    def __init__(self) -> None:
        self.needles: list[tuple[str, re.Pattern]] = []
        self.violations: list[str] = []
        self.generated = 0   # calls that compiled impsolve's generated source (allowed, and expected)

    def watch(self, source: str, identifiers: set[str]) -> None:
        needles = [("the spec source", re.compile(re.escape(source.strip())))]
        for line in source.splitlines():
            statement = line.split("#")[0].strip()
            if len(statement) >= 8:
                needles.append((f"the statement {statement!r}", re.compile(re.escape(statement))))
        needles += [(f"the identifier {name!r}", re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])"))
                    for name in sorted(identifiers)]
        self.needles = needles

    def wrap(self, name: str, original):
        guard = self

        def wrapper(*args, **kwargs):
            texts = [t for t in map(text_of, (*args, *kwargs.values())) if t is not None]
            if texts:   # (sympify is called very often, nearly always on SymPy objects: keep that fast)
                caller = sys._getframe(1).f_globals.get("__name__", "")
                if not caller.startswith("importlib"):   # the import system compiles and runs modules
                    if name == "compile" and "<impsolve generated>" in texts:
                        guard.generated += 1
                    for text in texts:
                        for what, pattern in guard.needles:
                            if pattern.search(text):
                                guard.violations.append(f"{name}() got text containing {what} (from {caller})")
                                raise AssertionError(guard.violations[-1])
            return original(*args, **kwargs)
        wrapper.__wrapped__ = original
        return wrapper


def install(guard: Guard, monkeypatch) -> None:
    modules = {name: importlib.import_module(f"sympy.{name}")
               for name in ("core.sympify", "parsing.sympy_parser", "utilities.lambdify")}
    originals = {
        "eval": builtins.eval, "exec": builtins.exec, "compile": builtins.compile,
        "sympify": modules["core.sympify"].sympify, "parse_expr": modules["parsing.sympy_parser"].parse_expr,
        "lambdify": modules["utilities.lambdify"].lambdify,
    }
    wrappers = {id(fn): guard.wrap(name, fn) for name, fn in originals.items()}
    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, wrappers[id(originals[name])])
    # Every module that bound one of them by name (`from sympy import sympify`, SymPy's own modules).
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or module is builtins:
            continue
        for attribute, value in list(namespace.items()):
            if id(value) in wrappers and value in originals.values():
                monkeypatch.setattr(module, attribute, wrappers[id(value)])


def load_compile_forward(source_or_path, guard: Guard) -> str:
    problem = impsolve.load(source_or_path)
    module = problem.compile(device="cpu")
    module()
    return problem.source()


@pytest.fixture(scope="module")
def warm():
    """Import everything the specs need before the guard goes in (one small spec end to end)."""
    import sympy.parsing.sympy_parser  # noqa: F401
    impsolve.load(IMPLICIT).compile(device="cpu")()
    impsolve.load(MAIN).compile(device="cpu")()


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_no_evaluation_of_spec_text_while_loading_compiling_and_running(path, warm, monkeypatch):
    monkeypatch.chdir(path.parent)   # spec text names its data files relative to the working folder
    original = path.read_text()
    marked = renamed(original)
    guard = Guard()
    install(guard, monkeypatch)
    # 1. Renamed identifiers: any text given to eval & co. that holds 'zqx' came from the spec.
    guard.watch(marked, user_identifiers(marked) | {MARKER})
    vocabulary = set(IDENTIFIER.findall(load_compile_forward(marked, guard))) - {MARKER}
    # 2. The spec itself, from its path. Identifiers that the generated code also uses for its
    #    own purposes (the 'a' of its header comment, a 'y' lambda parameter) are covered by 1.
    exempt = {n for n in user_identifiers(original) if n in vocabulary}
    guard.watch(original, user_identifiers(original) - exempt)
    load_compile_forward(path, guard)
    assert not guard.violations, guard.violations
    assert guard.generated == 2, "the runtime's compile of generated source was not seen: is the guard in place?"
    monkeypatch.undo()
    record(**{f"eval_guard.{path.stem}": {"violations": 0, "generated_compiles": guard.generated,
                                          "exempt_identifiers": sorted(exempt)}})


def test_the_guard_catches_spec_text(monkeypatch, warm):
    """The guard is not vacuous: sympify or exec of spec text, or of a marked name, is caught."""
    import sympy
    guard = Guard()
    install(guard, monkeypatch)
    guard.watch(MAIN, user_identifiers(MAIN))
    with pytest.raises(AssertionError, match="the identifier 'head'"):
        sympy.sympify("head + 1")
    with pytest.raises(AssertionError, match="the statement"):
        eval("2 if 'horizon 1' else 0")
    with pytest.raises(AssertionError, match="identifier 'k'"):
        exec(compile("k = 1", "<x>", "exec"))
    monkeypatch.undo()
    assert len(guard.violations) == 3


# -------------------------------------------------------------------------------- source lint
BARE_CALLS = {"eval", "exec", "compile", "sympify", "parse_expr", "lambdify", "__import__"}
ATTRIBUTE_CALLS = {"sympify", "parse_expr", "lambdify"}   # sympy.sympify(...), sp.lambdify(...)
ALLOWED = ("runtime/library.py", "exec(compile(source,")


def evaluation_calls(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each call of an evaluation function in a Python file: a bare name call
    (not `def eval(...)`, SymPy's Function API), `builtins.eval(...)`, or an attribute call of
    sympify/parse_expr/lambdify. Comments and strings do not count."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
    hits = []
    for i, tok in enumerate(tokens[:-1]):
        if tok.type != tokenize.NAME or tokens[i + 1].string != "(":
            continue
        before = tokens[i - 1].string if i else ""
        owner = tokens[i - 2].string if i > 1 else ""
        if before == "def":
            continue
        if before == "." and not (tok.string in ATTRIBUTE_CALLS
                                  or owner in ("builtins", "__builtins__") and tok.string in BARE_CALLS):
            continue
        if before != "." and tok.string not in BARE_CALLS:
            continue
        hits.append((tok.start[0], tok.line.strip()))
    return hits


def package_sources() -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in (ROOT / d).rglob("*.py"))


def test_source_lint_finds_no_evaluation_but_the_generated_code():
    allowed, other = [], []
    for path in package_sources():
        relative = path.relative_to(ROOT).as_posix()
        for line, text in evaluation_calls(path):
            (allowed if (relative, ALLOWED[1]) == (ALLOWED[0], text[:len(ALLOWED[1])]) or
             relative == ALLOWED[0] and ALLOWED[1] in text else other).append(f"{relative}:{line}: {text}")
    assert not other, "evaluation calls outside runtime/library.py's exec of generated code:\n" + "\n".join(other)
    # exec(...) and the compile(...) inside it: one line
    assert len({a.rsplit(":", 1)[0] for a in allowed}) == 1 and len(allowed) == 2, allowed
    record(lint_files=len(package_sources()), lint_hits_outside_allowed=0)


def test_source_lint_is_not_vacuous(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import sympy as sp\nimport builtins\n"
                      "def eval(cls, x):  # eval(x) in a comment\n    return 'exec(1)'\n"
                      "model.eval()\nsp.sympify(t)\nbuiltins.exec(c)\nsympify(t)\nparse_expr(t)\n"
                      "sp.lambdify(x, e)\neval(t)\n__import__('os')\nre.compile('x')\n")
    assert [line for line, _ in evaluation_calls(sample)] == [6, 7, 8, 9, 10, 11, 12]


def test_python_keywords_are_never_names():
    """Every Python keyword is rejected as a declared name (the generated code stays parseable)."""
    for word in keyword.kwlist + keyword.softkwlist:
        if not IDENTIFIER.fullmatch(word) or word.startswith("_"):
            continue
        text, _ = fill(DECLARING["const name"], word, Path("unused"))
        err, _ = outcome_of(text)
        assert err is not None and err.line == MAIN.count("\n") + 1, word
