"""Malformed specs: each one is a SpecError located at file:line:col, with a useful message and hint."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from impsolve.dsl import SpecError, check, parse, read_spec

ROOT = Path(__file__).resolve().parents[1]

# A valid remainder, four lines long, that the malformed lines below are put before or after.
BASE = "state x = 0\nder(x) = -x\nhorizon 1\nminimize x(T)\n"
DYNAMICS = "state x = 0\nder(x) = -x\nhorizon 1\n"

# id, spec text, line, column, fragment of the message, fragment of the hint (or None)
CASES = [
    # ---- syntax
    ("missing operand", "const a = 1 +\n" + BASE, 1, 14, "unexpected end of line", "expected an expression"),
    ("missing operand mid", "const a = 1 + * 2\n" + BASE, 1, 15, "unexpected '*'", "expected an expression"),
    ("missing value", "const a =\n" + BASE, 1, 10, "unexpected end of line", "expected an expression"),
    ("unclosed paren", "const a = (1 + 2\n" + BASE, 1, 11, "'(' is never closed", "line 2 is read as part of it"),
    ("unclosed bracket at end", BASE + "const a = [1,\n 2", 5, 11, "'[' is never closed", "the spec ends"),
    ("unclosed call", BASE + "solve ode(method=dopri5,\n  rtol=1e-6\n", 5, 10, "'(' is never closed", None),
    ("unmatched paren", "const a = 1 + 2)\n" + BASE, 1, 16, "unmatched ')'", None),
    ("missing comma in call", "const a = max(1\n 2)\n" + BASE, 2, 2, "unexpected '2'", "expected ')', ','"),
    ("= for == in expect", BASE + "expect x(T) = 1 tol 0.1\n", 5, 13, "unexpected '='", "use '=='"),
    ("= for == in stop", DYNAMICS.replace("horizon 1", "stop when x = 1 within 2"), 3, 13,
     "unexpected '='", "use '=='"),
    ("unknown statement", "cosnt a = 1\n" + BASE, 1, 1, "unknown statement 'cosnt'", "did you mean 'const'"),
    ("unknown statement, no guess", BASE + "whatever a = 1\n", 5, 1, "unknown statement 'whatever'",
     "a statement starts with one of: problem, const"),
    ("statement expected", "3 + 4\n" + BASE, 1, 1, "expected a statement, got '3'", "one of: problem"),
    ("two statements on a line", "const a = 1 const b = 2\n" + BASE, 1, 13, "unexpected 'const'", None),
    ("dollar", "const a = 1 $ 2\n" + BASE, 1, 13, "unexpected character '$'", None),
    ("stray backslash", "const a = 1 \\ 2\n" + BASE, 1, 13, "unexpected character '\\'", "last character"),
    ("attribute access", DYNAMICS + "minimize x.real\n", 4, 11, "unexpected character '.'", None),
    ("unterminated string", 'problem p "a title\n' + BASE, 1, 11, "unterminated string", "on the same line"),
    ("string as a value", 'const a = "x"\n' + BASE, 1, 11, 'unexpected string "x"', "title"),
    ("number too large", "const a = 2*1e999\n" + BASE, 1, 13, "the number 1e999 is too large", None),
    ("NUL byte", "const a = 1\x00\n" + BASE, 1, 12, "NUL byte", None),
    ("at what", DYNAMICS + "minimize x at foo\n", 4, 15, "unexpected 'foo'", "expected 'end' or 'stop'"),
    ("stop without within", DYNAMICS.replace("horizon 1", "stop when x < 1"), 3, 16, "unexpected end of line",
     "expected 'within'"),
    ("tol without number", BASE + "expect x(T) == 1 tol\n", 5, 21, "unexpected end of line", "expected a number"),
    ("tol twice", BASE + "expect x(T) == 1 tol 1 tol 2\n", 5, 24, "'tol' is given twice", None),
    ("positional after keyword", "const a = max(1, b=2, 3)\n" + BASE, 1, 23, "positional argument cannot follow", None),
    ("keyword in a list", "const a = [1, b=2]\n" + BASE, 1, 15, "list entry cannot be 'name = value'", None),
    ("nested too deeply", "const a = " + "-" * 300 + "1\n" + BASE, 1, 1, "nested too deeply", "let"),
    # ---- names
    ("undefined name", DYNAMICS.replace("-x", "-k*x") + "minimize x(T)\n", 2, 11, "undefined name 'k'", "declare it"),
    ("undefined name, did you mean", "const alpha = 1\n" + BASE.replace("-x", "-alpah*x"), 3, 11,
     "undefined name 'alpah'", "did you mean 'alpha'"),
    ("duplicate", "const a = 1\nconst b = 2, a = 3\n" + BASE, 2, 14, "'a' is already declared (as const on line 1)",
     None),
    ("duplicate across kinds", "const x = 1\n" + BASE, 2, 7, "'x' is already declared", None),
    ("underscore name", "const _a = 1\n" + BASE, 1, 7, "may not start with '_'", None),
    ("python keyword", "const lambda = 1\n" + BASE, 1, 7, "'lambda' is a reserved word", None),
    ("python keyword as let", "let class = 1\n" + BASE, 1, 5, "'class' is a reserved word", None),
    ("python keyword as def parameter", "def f(a, import) = a\n" + BASE, 1, 10, "'import' is a reserved word", None),
    ("underscore net input", "net n(_y): mlp()\n" + BASE, 1, 7, "may not start with '_'", None),
    ("repeated def parameter", "def f(a, a) = a\n" + BASE, 1, 10, "'f' has the parameter 'a' twice", None),
    ("long name", "const " + "a" * 65 + " = 1\n" + BASE, 1, 7, "name is too long (65 characters", None),
    ("builtin redeclared", "const pi = 3\n" + BASE, 1, 7, "'pi' is a built-in name", None),
    ("function as value", "const a = sin\n" + BASE, 1, 11, "'sin' is a function", None),
    ("unknown function", "const a = sinn(1)\n" + BASE, 1, 11, "unknown function 'sinn'", "did you mean 'sin'"),
    # ---- dynamics and structure
    ("der of a const", "const a = 1\nder(a) = 1\n" + BASE, 2, 5, "der() needs a state, but 'a' is a const", None),
    ("der of undeclared", "der(z) = 1\n" + BASE, 1, 5, "der() of undeclared name 'z'", "declare it with 'state'"),
    ("der twice", BASE + "der(x) = 1\n", 5, 1, "der(x) is given twice", "first on line 2"),
    ("state without dynamics", "state z = 0\n" + BASE, 1, 7, "state 'z' has no dynamics", "der(z) = ..."),
    ("states without horizon", "state x = 0\nder(x) = -x\nminimize x(T)\n", 1, 7, "needs 'horizon <T>'", None),
    ("horizon and stop", BASE + "stop when x < 1 within 2\n", 5, 1, "either 'horizon' or 'stop when'", None),
    ("stop on equality", DYNAMICS.replace("horizon 1", "stop when x == 1 within 2") + "minimize x at stop\n", 3, 11,
     "'stop when' needs a condition", None),
    ("no objective", DYNAMICS, 1, 1, "the spec has no objective", "minimize <expr>"),
    ("two objectives", BASE + "maximize x(T)\n", 5, 1, "only one objective", "the first is on line 4"),
    ("at stop without stop", DYNAMICS + "minimize x at stop\n", 4, 1, "'at stop' needs a 'stop when'", "at end"),
    ("bare state in objective", DYNAMICS + "minimize x\n", 4, 10, "the state 'x' needs a time here", "trajectory"),
    ("bare state in expect", BASE + "expect x == 1 tol 1\n", 5, 8, "the state 'x' needs a time here", None),
    ("time in objective", DYNAMICS + "minimize x(T) + t\n", 4, 17, "the time 't' has no fixed value", None),
    ("control in objective", DYNAMICS + "control u = 2*x\nminimize x(T) + u\n", 5, 17,
     "'u' changes along the trajectory (it depends on the state 'x')", None),
    ("def of a state in objective", DYNAMICS + "def f(a) = a^2\nminimize f(x)\n", 5, 12, "the state 'x' needs a time",
     None),
    ("state at another time", DYNAMICS + "minimize x(1)\n", 4, 10, "a state can be taken at 0 or at T", None),
    ("state at a time in dynamics", "state x = 0\nder(x) = x(T)\nhorizon 1\nminimize x(T)\n", 2, 10,
     "can only be used in an objective or expect", None),
    ("state in a const", "const a = 2*x\n" + BASE, 1, 13, "the state 'x' cannot be used in const", None),
    ("comparison as a value", "const a = 1 < 2\n" + BASE, 1, 11, "a comparison cannot be used as a value", None),
    ("comparison in objective", DYNAMICS + "minimize x(T) > 1\n", 4, 10, "comparison cannot be used as a value", None),
    ("== without tol", BASE + "expect x(T) == 1\n", 5, 1, "'==' in expect needs a tolerance", "tol 1%"),
    ("tol on an inequality", BASE + "expect x(T) < 1 tol 1\n", 5, 1, "'tol' and 'rms' only apply to '=='", None),
    ("rms without over", BASE + "expect x(T) == 1 tol 1 rms\n", 5, 1, "'rms' needs an 'over' range", None),
    ("over a const", "const c = 1\n" + BASE + "expect x == 1 over c in [0, 1] tol 1\n", 6, 15, "'over' needs a state",
     None),
    # ---- calls and arity
    ("builtin arity", "const a = sin(1, 2)\n" + BASE, 1, 11, "sin() takes 1 argument, got 2", None),
    ("builtin at least", "const a = max(1)\n" + BASE, 1, 11, "max() takes at least 2 arguments, got 1", None),
    ("def arity", "def f(a, b) = a + b\nconst c = f(1)\n" + BASE, 2, 11, "def 'f' takes 2 arguments, got 1", None),
    ("net arity", "net n(y): mlp()\n" + BASE.replace("-x", "-n(x, x)"), 3, 11, "net 'n' takes 1 argument, got 2",
     None),
    ("cycle among lets", "let a = b + 1\nlet b = 2*a\n" + BASE, 1, 5, "circular definition: a -> b -> a", None),
    ("cycle among defs", "def f(a) = g(a)\ndef g(a) = f(a)\n" + BASE, 1, 5, "circular definition: f -> g -> f", None),
    ("self-referencing const", "const a = a + 1\n" + BASE, 1, 7, "circular definition: a -> a", None),
    # ---- settings
    ("unknown solve option", BASE + "solve ode(rtoll=1e-6)\n", 5, 11, "unknown option 'rtoll' for ode()",
     "did you mean 'rtol'"),
    ("unknown train option", BASE + "train adam(step=10)\n", 5, 12, "unknown option 'step' for adam()",
     "did you mean 'steps'"),
    ("unknown optimizer", BASE + "train adamw(lr=0.1)\n", 5, 7, "unknown train setting 'adamw'", "did you mean 'adam'"),
    ("unknown net kind", "net n(y): mlpp()\n" + BASE, 1, 11, "unknown net setting 'mlpp'", "did you mean 'mlp'"),
    ("invalid method", BASE + "solve ode(method=foo)\n", 5, 18, "invalid value for 'method'", None),
    ("negative lr", BASE + "train adam(lr=-1)\n", 5, 15, "invalid value for 'lr': Input should be greater than 0",
     None),
    ("option given twice", BASE + "train adam(lr=1, lr=2)\n", 5, 18, "option 'lr' is given twice", None),
    ("positional option", BASE + "solve ode(1e-6)\n", 5, 11, "options of ode() are given as name=value", None),
    ("fixed step without step_size", BASE + "solve ode(method=rk4)\n", 5, 1, "needs step_size", "step_size=0.01"),
    ("batch not an integer", BASE + "batch 2.5\n", 5, 7, "batch must be a positive integer", None),
    ("batch a const not given as a number", BASE + "const B = 2*2\nbatch B\n", 6, 7, "batch must be a positive integer",
     "a number, or a const declared as one"),
    ("unknown distribution", "state z ~ gauss(0, 1)\nder(z) = 0\nhorizon 1\nminimize mean(z(T))\n", 1, 11,
     "unknown distribution 'gauss'", None),
    ("const from a distribution", "const a ~ normal(0, 1)\n" + BASE, 1, 11, "a const cannot be drawn", None),
]


def error_of(text: str, filename: str = "t.imp") -> SpecError:
    with pytest.raises(SpecError) as caught:
        check(parse(text, filename))
    return caught.value


def caret_column(rendered: str, line: int) -> int:
    """The 1-based column the caret of a rendered error points at (spaces only before it)."""
    lines = rendered.splitlines()
    source_row = next(i for i, row in enumerate(lines) if row.startswith(f"{line:>5} | "))
    caret_row = lines[source_row + 1]
    return caret_row.index("^") - caret_row.index("| ") - 2 + 1


@pytest.mark.parametrize("text, line, column, message, hint", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_located_error(text, line, column, message, hint):
    err = error_of(text)
    assert (err.line, err.column) == (line, column), err.render()
    assert message in err.message, err.render()
    if hint is not None:
        assert err.hint and hint in err.hint, err.render()
    rendered = err.render()
    assert rendered.startswith(f"t.imp:{line}:{column}: error: ")
    source_line = text.split("\n")[line - 1].rstrip("\r")
    if source_line.strip() and "\x00" not in source_line:
        assert f"{line:>5} | {source_line[:200]}" in rendered
        assert caret_column(rendered, line) == column


def test_there_are_enough_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 25


def test_no_lark_names_in_messages():
    for _, text, *_ in CASES:
        rendered = error_of(text).render()
        for leak in ("RPAR", "LPAR", "LSQB", "RSQB", "__ANON", "_NL", "$END", "COMP_OP", "NAME", "NUMBER", "Token("):
            assert leak not in rendered, rendered


# --------------------------------------------------------------------- render
def test_render_shows_file_line_source_and_caret_under_the_span():
    err = error_of("const v = 1\nlet w = v*coss(v)\n" + BASE, "specs/bad.imp")
    rendered = err.render()
    assert rendered.splitlines() == [
        "specs/bad.imp:2:11: error: unknown function 'coss'",
        "    2 | let w = v*coss(v)",
        "      |           ^^^^",
        "  hint: did you mean 'cos', 'cosh' or 'acos'?",
    ]
    assert str(err) == rendered


def test_render_keeps_tabs_so_the_caret_lines_up():
    rendered = error_of("const a =\t1 $ 2\n").render()
    assert rendered.splitlines()[1:3] == ["    1 | const a =\t1 $ 2", "      | " + " " * 9 + "\t" + "  ^"]


def test_render_with_crlf_and_form_feed_counts_lines_like_the_lexer():
    err = error_of("const a = 1\f\r\nconst b = $\r\n")
    assert (err.line, err.column) == (2, 11)
    assert "    2 | const b = $\n      |           ^" in err.render()


def test_render_masks_control_characters():
    rendered = error_of("const a = 1\x00 + 2\n").render()
    assert "    1 | const a = 1? + 2" in rendered and "\x00" not in rendered


def test_render_at_end_of_line_and_of_input():
    err = error_of("const a = 2 *")
    assert (err.line, err.column) == (1, 14)
    assert err.message == "unexpected end of input"
    assert err.render().splitlines()[2] == "      | " + " " * 13 + "^"


def test_render_of_an_empty_spec_has_no_source_line():
    assert error_of("").render() == ("t.imp:1:1: error: the spec has no objective\n"
                                     "  hint: add 'minimize <expr>' or 'maximize <expr>'")


def test_render_without_location():
    err = SpecError("no such spec file: missing.imp", None, filename="missing.imp")
    assert err.render() == "missing.imp: error: no such spec file: missing.imp"
    assert err.line is None and err.column is None


def test_long_lines_are_cut_in_the_rendering():
    err = error_of("const a = " + "1 + " * 100 + "$\n")
    assert err.column == 411
    source_row = err.render().splitlines()[1]
    assert source_row.endswith(" ...") and len(source_row) < 220


# --------------------------------------------------------------- read_spec
def test_read_spec_from_path_and_text(tmp_path):
    bad = tmp_path / "bad.imp"
    bad.write_text(BASE + "train adam(lr=-1)\n")
    for source in (bad, str(bad)):
        with pytest.raises(SpecError) as caught:
            read_spec(source)
        assert caught.value.render().startswith(f"{bad}:5:15: error: invalid value for 'lr'")
    with pytest.raises(SpecError) as caught:
        read_spec(BASE + "solve ode(rtoll=1)\n")
    assert caught.value.render().startswith("<spec>:5:11: error: unknown option 'rtoll'")


def test_read_spec_missing_and_binary_files(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        read_spec(tmp_path / "missing.imp")
    binary = tmp_path / "binary.imp"
    binary.write_bytes(b"const a = 1\n\xff\xfe\n")
    with pytest.raises(SpecError, match="not valid UTF-8"):
        read_spec(binary)


def test_valid_specs_check():
    checked = read_spec(ROOT / "specs" / "zermelo.imp")
    assert checked.name == "zermelo" and list(checked.states) == ["x", "y"]
    assert read_spec(DYNAMICS + "minimize x at end\nexpect x at end < 1\nexpect integral(x^2) + x(0) < 1\n")
    assert read_spec("const " + "a" * 64 + " = 1\n" + BASE)


# ------------------------------------------------------------ hostile input
HOSTILE = [
    'const x = __import__("os").system("touch {sentinel}")\n' + BASE,
    'const k = __import__(1)\n' + BASE,
    "state __class__ = 0\n" + BASE,
    DYNAMICS + "minimize x.__class__\n",
    DYNAMICS + 'minimize x(T) + __import__("os").system("touch {sentinel}")\n',
    "def __init__(self) = 1\n" + BASE,
    "let y = __builtins__\n" + BASE,
    "net n(__dict__): mlp()\n" + BASE,
    'problem __import__ "x"\n' + BASE,
    BASE + 'solve ode(method=__import__("os").system("touch {sentinel}"))\n',
    BASE + "train adam(lr=eval)\n",
    BASE + "expect exec(x(T)) == 1 tol 1\n",
    'const x = 1; __import__("os").system("touch {sentinel}")\n' + BASE,
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_specs_are_rejected_without_side_effects(template, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    text = template.replace("{sentinel}", str(sentinel))
    with pytest.raises(SpecError) as caught:
        read_spec(text)
    assert caught.value.line is not None and caught.value.column is not None
    assert not sentinel.exists()


# ---------------------------------------------------------------------- CLI
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "impsolve.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_cli_check_reports_a_spec_error(tmp_path):
    bad = tmp_path / "bad.imp"
    bad.write_text("const alpha = 1\nstate x = 0\nder(x) = -alpah*x\nhorizon 1\nminimize x(T)\n")
    done = run_cli("check", str(bad))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{bad}:3:11: error: undefined name 'alpah'",
        "    3 | der(x) = -alpah*x",
        "      |           ^^^^^",
        "  hint: did you mean 'alpha'?",
    ]


@pytest.mark.parametrize("text", ["cosnt a = 1\n", "const a = (1 +\n", "\x00", "const a = " + "-" * 5000 + "1\n"])
def test_cli_check_syntax_errors_have_no_traceback(tmp_path, text):
    bad = tmp_path / "bad.imp"
    bad.write_text(text)
    done = run_cli("check", str(bad))
    assert done.returncode == 2
    assert f"{bad}:1:" in done.stderr and "^" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_cli_check_missing_file():
    done = run_cli("check", "no/such/file.imp")
    assert done.returncode == 2
    assert "no such spec file" in done.stderr and "Traceback" not in done.stderr


def test_cli_check_valid_spec():
    done = run_cli("check", "specs/zermelo.imp")
    assert done.returncode == 0, done.stderr
    assert "specs/zermelo.imp: ok" in done.stdout


@pytest.mark.skipif(shutil.which("impsolve") is None, reason="the impsolve script is not installed")
def test_impsolve_script_checks_a_valid_spec():
    done = subprocess.run(["impsolve", "check", "specs/zermelo.imp"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_cli_check_imports_neither_torch_nor_numpy():
    """Start-up (issue 16): checking a spec without an LQR reference needs SymPy, not torch or NumPy."""
    code = ("import sys, impsolve.cli; rc = impsolve.cli.main(['check', 'specs/zermelo.imp']); assert rc == 0, rc; "
            "heavy = [m for m in ('torch', 'numpy', 'scipy', 'matplotlib') if m in sys.modules]; "
            "assert not heavy, f'check imported {heavy}'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
