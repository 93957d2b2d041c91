"""Fuzzing the front end: no input makes parse/check (or the SymPy lowering) fail other than with a
located SpecError, and parse+check stays under a second.

- Grammar-based: `hypothesis.extra.lark.from_lark` on dsl/grammar.lark, 1,000 examples
  (derandomized): whole specs from the start rule, statements after a preamble of declarations,
  and random objectives and expects after that preamble (these mostly check, and get lowered).
  Explicit strategies for the terminals: names from a small pool so that specs get past name
  resolution, keywords and names with blanks around them so that they do not merge. `tamed()`
  biases the rules towards their shortest alternatives (see there: without it most draws overrun).
- Mutations of the real specs in specs/: truncation, token swaps, deletions, duplications and
  replacements, duplicated/deleted/swapped lines, NUL bytes, odd Unicode, a 1 MB line, deep
  nesting of parentheses, lines spliced from other specs; one to three per input. 2,000
  mutations (seeded, reproducible).
- Edge inputs: empty, blank, at and over the size and token limits, deep nesting, long chains.

Every input goes through `impsolve.dsl.parse` + `impsolve.dsl.check`; one that checks OK is also
lowered (`impsolve.api.Problem`, what `impsolve.load` does). Lowering is costly for the vector
specs (seconds for deq), so each distinct token stream is lowered once, and at most LOWER_PER_SEED
variants of each spec (HEAVY_LOWER_PER_SEED of a spec whose lowering takes over a second).

Checked for each input: no exception but SpecError; every SpecError has a line and a column (the
only SpecErrors without a location are about files and `--set` overrides, which text cannot
reach; an empty input is 'the spec has no objective' at 1:1); its rendering starts with
file:line:col and shows no Lark names; parse+check takes under MAX_SECONDS of CPU time (the
process's own, so other work on a shared machine does not count; a time over half the limit is
measured twice more and the least kept).

Longer runs: `python -m pytest tests/test_fuzz.py -m slow` (10,000 mutations with more of them
lowered, and 5,000 grammar examples, not derandomized: new ones each run);
IMPSOLVE_FUZZ_SEED=<n> changes the mutation seed. Non-finite and singular constants, found this
way, are checked at the end. `IMPSOLVE_RELIABILITY_DIR=<dir>` writes the figures
to <dir>/fuzz.json (tools/reliability_report.py).
"""
from __future__ import annotations

import json
import os
import random
import re
import time
import traceback
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from impsolve.api import Problem
from impsolve.dsl import SpecError, check, parse
from impsolve.dsl.lexing import GRAMMAR_PATH, STATEMENT_KEYWORDS, build_parser


@lru_cache(maxsize=1)
def _lark() -> Lark:
    """A parser built from the grammar text (one loaded from the cache keeps no `grammar`)."""
    return build_parser(GRAMMAR_PATH.read_text())


ROOT = Path(__file__).resolve().parents[1]
SPECS = {p.stem: p.read_text() for p in sorted((ROOT / "specs").glob("*.imp"))}
FILENAME = str(ROOT / "specs" / "fuzz.imp")   # next to the real specs, so their data files resolve
MAX_SECONDS = 1.0
GRAMMAR_EXAMPLES = 1_000
MUTATIONS = 2_000
SLOW_GRAMMAR_EXAMPLES = 5_000
SLOW_MUTATIONS = 10_000
LOWER_PER_SEED = 5
HEAVY_LOWER_PER_SEED = 1
HEAVY = {"deq", "ols_design", "ols_design_aopt"}   # lowering takes seconds
LARK_NAMES = ("__ANON", "Token(", "$END", "_NL", "LPAR", "RPAR", "LSQB", "RSQB", "COMP_OP", "NUMBER", "NAME",
              "Traceback")


def record(section: str, figures: dict) -> None:
    """Merge figures into $IMPSOLVE_RELIABILITY_DIR/fuzz.json (for tools/reliability_report.py)."""
    folder = os.environ.get("IMPSOLVE_RELIABILITY_DIR")
    if not folder:
        return
    path = Path(folder) / "fuzz.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = figures
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


class Campaign:
    """Runs inputs through parse + check (+ lowering) and keeps the figures and the failures."""

    def __init__(self, per_seed: int = LOWER_PER_SEED, heavy_per_seed: int = HEAVY_LOWER_PER_SEED) -> None:
        self.per_seed, self.heavy_per_seed = per_seed, heavy_per_seed
        self.counts: Counter = Counter()
        self.max_seconds = 0.0
        self.slowest = ""
        self.failures: list[str] = []
        self.lowered: set[tuple] = set()
        self.lowered_per_seed: Counter = Counter()
        self.seconds = 0.0            # in parse+check
        self.lowering_seconds = 0.0

    def run(self, text: str, seed: str = "", origin: str = "") -> str:
        """'rejected', 'checked' or 'lowered'; failures are recorded, not raised."""
        self.counts["inputs"] += 1
        start = time.process_time()
        try:
            checked = check(parse(text, FILENAME))
        except SpecError as err:
            self.timed(start, text)
            self.counts["rejected"] += 1
            self.validate(err, text, origin)
            return "rejected"
        except Exception:  # noqa: BLE001 - any other exception is the finding
            self.timed(start, text)
            self.fail("parse/check", text, origin)
            return "traceback"
        self.timed(start, text)
        self.counts["checked"] += 1
        key = tokens_of(text)
        if key in self.lowered or (seed and self.lowered_per_seed[seed] >=
                                   (self.heavy_per_seed if seed in HEAVY else self.per_seed)):
            return "checked"
        self.lowered.add(key)
        self.lowered_per_seed[seed] += 1
        self.counts["lowered"] += 1
        start = time.perf_counter()
        try:
            Problem(checked)
        except SpecError as err:
            self.counts["rejected by lowering"] += 1
            self.validate(err, text, origin)
        except Exception:  # noqa: BLE001
            self.fail("lowering", text, origin)
            return "traceback"
        finally:
            self.lowering_seconds += time.perf_counter() - start
        return "lowered"

    def timed(self, start: float, text: str) -> None:
        """Keep the largest parse+check CPU time. A time over half the limit is measured twice more
        and the least of the three kept."""
        elapsed = time.process_time() - start
        if elapsed > MAX_SECONDS / 2:
            for _ in range(2):
                again = time.process_time()
                try:
                    check(parse(text, FILENAME))
                except Exception:  # noqa: BLE001 - already recorded
                    pass
                elapsed = min(elapsed, time.process_time() - again)
        self.seconds += elapsed
        if elapsed > self.max_seconds:
            self.max_seconds, self.slowest = elapsed, text

    def validate(self, err: SpecError, text: str, origin: str) -> None:
        rendered = err.render()
        problem = None
        if err.line is None or err.column is None:
            problem = "SpecError without line and column"
        elif not 1 <= err.line <= text.count("\n") + 1:
            problem = f"line {err.line} is outside the input ({text.count(chr(10)) + 1} lines)"
        elif not 1 <= err.column <= len(text.split("\n")[err.line - 1]) + 1:
            problem = f"column {err.column} is outside line {err.line}"
        elif not rendered.startswith(f"{FILENAME}:{err.line}:{err.column}: error: "):
            problem = "rendering does not start with file:line:col"
        elif any(name in rendered for name in LARK_NAMES):
            problem = "a Lark name leaks into the message"
        if problem:
            self.counts["bad errors"] += 1
            self.failures.append(f"[{origin}] {problem}\n  input: {text[:300]!r}\n  error: {rendered[:500]}")

    def fail(self, stage: str, text: str, origin: str) -> None:
        self.counts["tracebacks"] += 1
        self.failures.append(f"[{origin}] exception in {stage}\n  input: {text[:300]!r}\n"
                             + "".join(traceback.format_exc(limit=-4)))

    def figures(self) -> dict:
        return {**self.counts, "tracebacks": self.counts["tracebacks"], "bad errors": self.counts["bad errors"],
                "max parse+check seconds": round(self.max_seconds, 4),
                "mean parse+check seconds": round(self.seconds / max(1, self.counts["inputs"]), 5),
                "lowering seconds": round(self.lowering_seconds, 2)}

    def assert_clean(self) -> None:
        assert not self.failures, f"{len(self.failures)} failures:\n" + "\n\n".join(self.failures[:10])
        assert self.max_seconds < MAX_SECONDS, \
            f"parse+check took {self.max_seconds:.2f}s on {self.slowest[:200]!r} ({len(self.slowest)} characters)"


TOKEN = re.compile(r'"[^"\n]*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?'
                   r'|[=!<>]=|\r?\n|[ \t]+|.', re.S)


def tokens_of(text: str) -> tuple:
    """The tokens of a spec without blanks and comments (inputs that differ only there lower alike)."""
    return tuple(t for t in TOKEN.findall(text) if t.strip() and not t.startswith("#"))


# --------------------------------------------------------------------------- grammar-based
# Names and numbers, the common ones several times over (sampled_from draws evenly): names that
# PREAMBLE declares or the language knows, and a few that must be rejected.
NAMES = ["x", "y", "a", "k", "u", "w", "z", "n", "f"] * 6 + [
    "v", "t", "T", "pi", "sin", "exp", "tanh", "max", "where", "integral", "mean", "d", "diag", "sum", "norm",
    "smin", "randn", "mlp", "adam", "lbfgs", "ode", "newton", "picard", "lqr", "normal", "uniform", "Q",
    "R", "lr", "steps", "method", "rk4", "step_size", "hidden", "act", "tol", "true", "exec", "lambda", "_x",
    "__import__", "a" * 70]
NUMBERS = ["0", "1", "2", "3", "0.5", ".5", "2.", "1e-3"] * 4 + ["1e999", "100", "4096", "5000"]
KEYWORDS = {"PROBLEM", "CONST", "PARAM", "STATE", "DEF", "LET", "NET", "CONTROL", "DER", "HORIZON", "STOP",
            "WHEN", "WITHIN", "USING", "SOLVE", "TRAIN", "BATCH", "EXPECT", "AT", "REFERENCE", "PLOT", "OVER",
            "IN", "END", "TOL", "RMS"}


# Blanks around words: the grammar's ignored terminals (blanks, line continuations), which
# tamed() stops from_lark drawing between all symbols (a quarter of its draws).
PADDINGS = [(" ", " ")] * 6 + [("\t", " "), (" ", "\t"), ("\f", " "), (" ", " \\\n  ")]


def padded(words) -> st.SearchStrategy[str]:
    return st.sampled_from([f"{left}{w}{right}" for w in words for left, right in PADDINGS])


# Declarations that generated statements can refer to (names from NAMES), and a closing objective.
PREAMBLE = """\
const a = 2, n = 2
param k = 0.5
state x = 1, y = 0
der(x) = -k*x
der(y) = x
net f(z): mlp(hidden=[2])
def w(z) = z^2
let u = k*x
horizon 1
"""


def tamed(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Bias each rule of a from_lark strategy towards its shortest alternatives.

    from_lark picks a rule's alternatives with equal chances; the expression rules recurse in two
    of three (`sum: product | sum "+" product | sum "-" product`), so most draws grow until they
    overrun Hypothesis's buffer and are thrown away (about 17 draws per example kept, which made
    1,000 examples take minutes). Two times in three the shortest alternatives are taken instead.
    Also no ignored terminal is drawn after every symbol: the terminals bring their blanks.
    Uses LarkStrategy's `nonterminal_strategies` and `ignored_symbols`; without them the strategy
    is left as it is.
    """
    lark_strategy = getattr(strategy, "wrapped_strategy", strategy)
    rules = getattr(lark_strategy, "nonterminal_strategies", None)
    for name, choices in (rules or {}).items():
        expansions = getattr(choices, "elements", None)
        if not expansions:
            continue
        shortest = [e for e in expansions if len(e) == min(map(len, expansions))]
        if len(shortest) < len(expansions):
            rules[name] = st.one_of(st.sampled_from(shortest), st.sampled_from(shortest), choices)
    if rules is not None:
        lark_strategy.ignored_symbols = ()   # blanks come with the terminals (see PADDINGS)
    return lark_strategy


def grammar_strategy() -> st.SearchStrategy[str]:
    """Whole specs from the grammar's start rule, or statements from the grammar after PREAMBLE."""
    explicit = {t.name: padded([t.pattern.value]) if t.name in KEYWORDS else st.just(t.pattern.value)
                for t in _lark().terminals if t.pattern.type == "str"}   # literal terminals: no regex
    explicit.update({
        "NAME": padded(NAMES),
        "NUMBER": padded(NUMBERS),
        "SENSE": padded(["minimize", "maximize"]),
        "COMP_OP": padded(["==", "!=", "<", "<=", ">", ">="]),
        "STRING": st.sampled_from(['"title"', '""', '"a # b"', '"é\\\\"']),
        "COMMENT": st.just(" "),   # an inline comment would swallow the rest of the line; _NL has some
        "_NL": st.sampled_from(["\n", "\n  ", "\r\n", "  # c\n", "\n\n"]),
        "__IGNORE_0": st.sampled_from([" ", "\t", "\f"]),
        "__IGNORE_1": st.sampled_from(["\\\n", "\\ \r\n"]),
    })
    whole = tamed(from_lark(_lark(), explicit=explicit))

    def rule(name: str) -> st.SearchStrategy[str]:
        """Strings of one rule (from_lark takes explicit strategies only for the terminals it uses)."""
        _, rules, ignored = _lark().grammar.compile([name], ())
        used = {s.name for r in rules for s in r.expansion if s.is_term} | set(ignored)
        return tamed(from_lark(_lark(), start=name, explicit={k: v for k, v in explicit.items() if k in used}))
    statements = st.lists(rule("statement"), max_size=3)
    after_preamble = st.tuples(statements, st.booleans()).map(
        lambda t: PREAMBLE + "\n".join(t[0]) + ("\nminimize x(T)\n" if t[1] else "\n"))
    # the objective and the expects are random expressions of the declared names: most of these
    # specs check, and go on to be lowered
    expressions = st.tuples(rule("objective_stmt"), st.lists(rule("expect_stmt"), max_size=2)).map(
        lambda t: PREAMBLE + t[0] + "\n" + "\n".join(t[1]) + "\n")
    return st.one_of(whole, after_preamble, expressions)


def grammar_campaign(examples: int, derandomize: bool) -> Campaign:
    campaign = Campaign()

    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              phases=[Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much, HealthCheck.large_base_example])
    @given(grammar_strategy())
    def run(text):
        failures = len(campaign.failures)
        campaign.run(text, origin="grammar")
        if len(campaign.failures) > failures:   # let Hypothesis shrink it to a small example
            raise AssertionError(campaign.failures[-1])
    try:
        run()
    except AssertionError as err:
        campaign.failures.append(f"smallest failing example found by Hypothesis:\n{err}")
    return campaign


def test_grammar_based_fuzzing():
    campaign = grammar_campaign(GRAMMAR_EXAMPLES, derandomize=True)
    record("grammar", campaign.figures())
    assert campaign.counts["inputs"] >= GRAMMAR_EXAMPLES
    assert campaign.counts["checked"] > 0, "no generated spec got past the checker: the strategy is too wild"
    campaign.assert_clean()


@pytest.mark.slow
def test_grammar_based_fuzzing_long():
    campaign = grammar_campaign(SLOW_GRAMMAR_EXAMPLES, derandomize=False)
    record("grammar (slow)", campaign.figures())
    campaign.assert_clean()


# -------------------------------------------------------------------------------- mutations
ODD_CHARACTERS = ["\x00", "\u00a0", "\u200b", "\u202e", "\u2028", "\u2029", "\ufeff", "\x0b", "\x0c", "\r", "\t",
                  "\x85", "\x1b", "é", "\u0445", "\uff58", "\U0001f4a3", "\udcff", "\\", "\"", "'", "#", "$", "`",
                  ";", ".", "{", "}", "?", "!", "&", "|", "\u0301", "\u03c0", "\u221e"]
VOCABULARY = ["(", ")", "[", "]", ",", "=", "==", "<", ">=", "!=", "+", "-", "*", "/", "^", "@", "'", ":", "~",
              "%", "0", "1", "1e999", ".5", "x", "y", "T", "t", "pi", "q", "exec", "_x", *STATEMENT_KEYWORDS,
              "when", "within", "at", "stop", "end", "tol", "rms", "over", "in", "using", "sin", "integral",
              "mean", "d", "diag", "randn", "mlp", "ode", "adam", "newton", "lqr", "normal", "\n", "\\\n", "\"t\""]
BIG = 1_000_000


def huge_line(rng: random.Random) -> str:
    """A line of about 1 MB."""
    unit = rng.choice(["a", "1+", "(", "x*", "-", "# comment ", '"', "[1,", " ", "é"])
    return (unit * (BIG // len(unit)))[:BIG - rng.randrange(0, 50_000)]


def mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """One random mutation of a spec, and its name."""
    tokens = TOKEN.findall(text)
    solid = [i for i, t in enumerate(tokens) if t.strip()]
    lines = text.split("\n")
    kind = rng.choice(["truncate", "truncate", "swap tokens", "delete token", "duplicate token", "replace token",
                       "replace token", "duplicate line", "delete line", "swap lines", "NUL byte", "odd unicode",
                       "odd unicode", "1 MB line", "deep parentheses", "splice line", "case", "insert token"])
    if kind == "truncate":
        return text[:rng.randrange(len(text) + 1)], kind
    if kind == "swap tokens" and len(solid) > 1:
        i, j = rng.sample(solid, 2)
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif kind == "delete token" and solid:
        tokens[rng.choice(solid)] = ""
    elif kind == "duplicate token" and solid:
        i = rng.choice(solid)
        tokens[i] = tokens[i] * 2 if rng.random() < 0.5 else tokens[i] + " " + tokens[i]
    elif kind == "replace token" and solid:
        tokens[rng.choice(solid)] = rng.choice(VOCABULARY)
    elif kind == "insert token":
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(VOCABULARY) + rng.choice(["", " "]))
    elif kind == "case" and solid:
        i = rng.choice(solid)
        tokens[i] = tokens[i].upper() if rng.random() < 0.5 else tokens[i].capitalize()
    elif kind == "duplicate line":
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return "\n".join(lines), kind
    elif kind == "delete line":
        del lines[rng.randrange(len(lines))]
        return "\n".join(lines), kind
    elif kind == "swap lines" and len(lines) > 1:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines), kind
    elif kind == "splice line":
        other = rng.choice(list(SPECS.values())).split("\n")
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(other))
        return "\n".join(lines), kind
    elif kind in ("NUL byte", "odd unicode"):
        char = "\x00" if kind == "NUL byte" else rng.choice(ODD_CHARACTERS)
        i = rng.randrange(len(text) + 1)
        return text[:i] + char + text[i:], kind
    elif kind == "1 MB line":
        lines.insert(rng.randrange(len(lines) + 1), huge_line(rng))
        return "\n".join(lines), kind
    elif kind == "deep parentheses":
        operands = [i for i in solid if re.match(r"[\w.]", tokens[i])]
        if operands:
            i, depth = rng.choice(operands), rng.choice([50, 99, 100, 101, 200, 1_000, 5_000])
            tokens[i] = "(" * depth + tokens[i] + ")" * depth
    return "".join(tokens), kind


def mutation_campaign(count: int, seed: int, **lowering) -> Campaign:
    campaign = Campaign(**lowering)
    rng = random.Random(seed)
    names = sorted(SPECS)
    for index in range(count):
        name = names[index % len(names)]
        text, kinds = SPECS[name], []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            text, kind = mutate(text, rng)
            kinds.append(kind)
        campaign.run(text, seed=name, origin=f"seed {seed} #{index}: {name} {'+'.join(kinds)}")
    return campaign


def test_the_real_specs_check_unchanged():
    for name, text in SPECS.items():
        assert check(parse(text, FILENAME)).name == name


def test_mutations_of_the_real_specs():
    seed = int(os.environ.get("IMPSOLVE_FUZZ_SEED", "7"))
    campaign = mutation_campaign(MUTATIONS, seed)
    record("mutations", {**campaign.figures(), "seed": seed})
    assert campaign.counts["inputs"] == MUTATIONS
    assert campaign.counts["rejected"] > MUTATIONS // 4 and campaign.counts["checked"] > 0
    campaign.assert_clean()


@pytest.mark.slow
def test_mutations_of_the_real_specs_long():
    seed = int(os.environ.get("IMPSOLVE_FUZZ_SEED", "1000"))
    campaign = mutation_campaign(SLOW_MUTATIONS, seed, per_seed=4 * LOWER_PER_SEED, heavy_per_seed=3)
    record("mutations (slow)", {**campaign.figures(), "seed": seed})
    campaign.assert_clean()


# ---------------------------------------------------------------------------- edge inputs
EDGE_INPUTS = {
    "empty": "",
    "blank": " \n\t\n",
    "only a comment": "# nothing",
    "only NUL": "\x00",
    "BOM": "\ufeffminimize 1\n",
    "CR only": "param a = 1\rminimize a\r",
    "1 MB comment": "# " + "x" * (BIG - 100) + "\nparam a = 1\nminimize a\n",
    "1 MB title": 'problem p "' + "x" * (BIG - 100) + '"\nparam a = 1\nminimize a\n',
    "over the character limit": "param a = 1\nminimize a\n" + "#" * BIG,
    "at the token limit": "const c = [" + "1," * 4_990 + "1]\nminimize 1\n",
    "over the token limit": "const c = [" + "1," * 6_000 + "1]\nminimize 1\n",
    "1 MB name": "const " + "a" * (BIG - 100) + " = 1\nminimize 1\n",
    "deep parentheses": "const c = " + "(" * 4_900 + "1" + ")" * 4_900 + "\nminimize c\n",
    "deep minus": "const c = " + "-" * 9_000 + "1\nminimize c\n",
    "many statements": "".join(f"const c{i} = {i}\n" for i in range(2_400)) + "minimize c1\n",
    "long chain of lets": "param a = 1\nlet l0 = a\n" + "".join(f"let l{i} = l{i - 1} + a\n" for i in range(1, 1_500))
                          + "minimize l1499\n",
    "many undefined names": "minimize " + " + ".join(f"u{i}" for i in range(3_000)) + "\n",
    "unclosed at the end": "minimize (" + "[" * 3_000,
}


@pytest.mark.parametrize("label", list(EDGE_INPUTS))
def test_edge_inputs(label):
    campaign = Campaign()
    campaign.run(EDGE_INPUTS[label], origin=label)
    campaign.assert_clean()


# ------------------------------------------------------------------- non-finite and singular constants
# Found by probing the compiler with specs that check; each must be a located SpecError.
CONSTANT_FAULTS = {
    "inverse of a singular constant matrix": "param k = 1\nminimize k + sum(inv([[0, 0], [0, 0]]))\n",
    "0^-1 in a const": "const c = 0^-1\nparam k = 1\nminimize k + c\n",
    "log(0) in a const": "const c = log(0)\nparam k = 1\nminimize k + c\n",
    "overflowing product": "param k = 1\nminimize k + 1e308*1e308\n",
    "atan2(0, 0)": "param k = 1\nminimize k + atan2(0, 0)\n",
    "sqrt(-1)": "param k = 1\nminimize k + sqrt(-1)\n",
}


@pytest.mark.parametrize("label", list(CONSTANT_FAULTS))
def test_constant_faults_are_located_errors(label):
    import impsolve
    with pytest.raises(SpecError) as err:
        impsolve.load(CONSTANT_FAULTS[label])
    assert err.value.line is not None and err.value.column is not None
