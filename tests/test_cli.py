"""The command line: exit codes, options, and the result.json contract."""
import atexit
import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from impsolve.cli import main
from impsolve.runtime.results import Result


TINY = """
problem tiny "Steer a scalar to 1"
param k = 0.1
state x = 0
der(x) = k
horizon 1
minimize (x(T) - 1)^2
train sgd(lr=0.2, steps=60)
expect x at end == 1 tol 1e-2
expect k > 0.5
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.imp"
    path.write_text(TINY)
    return path


def test_run_writes_the_results_contract(tiny, tmp_path):
    out = tmp_path / "out"
    assert main([str(tiny), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    data = json.loads((out / "result.json").read_text())
    for key in ("problem", "status", "device", "dtype", "seed", "steps", "wall_time_s", "objective",
                "values", "checks"):
        assert key in data
    assert data["problem"] == "tiny" and data["status"] == "ok" and data["dtype"] == "float64"
    assert set(data["objective"]) >= {"sense", "expr", "final", "history"}
    assert len(data["objective"]["history"]) == data["steps"] == 60
    assert set(data["checks"][0]) >= {"name", "value", "reference", "error", "tolerance", "passed"}
    assert data["values"]["x"] == pytest.approx(1.0, abs=1e-2) and data["values"]["T"] == 1.0
    Result.model_validate(data)
    for name in ("history.csv", "trajectory.csv", "objective.png", "trajectory.png"):
        assert (out / name).stat().st_size > 0
    assert not list(out.glob(".*.tmp"))


def test_failed_expect_exits_1(tiny, tmp_path):
    assert main([str(tiny), "--out", str(tmp_path / "o"), "--quiet", "--steps", "2"]) == 1
    data = json.loads((tmp_path / "o" / "result.json").read_text())
    assert data["status"] == "expect_failed" and not data["checks"][0]["passed"]


def test_set_overrides_settings(tiny, tmp_path):
    assert main([str(tiny), "--out", str(tmp_path / "o"), "--quiet", "--set", "train.steps=3"]) == 1
    assert json.loads((tmp_path / "o" / "result.json").read_text())["steps"] == 3


@pytest.mark.parametrize("args", [["--set", "train.lrr=0.1"], ["--set", "train.lr=-1"], ["--set", "oops"]])
def test_bad_overrides_exit_2(tiny, args, capsys):
    assert main([str(tiny), "--quiet", *args]) == 2
    assert "error" in capsys.readouterr().err


def test_missing_file_exits_2(capsys):
    assert main(["nowhere.imp"]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_cuda_absent_is_a_clear_error(tiny, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main([str(tiny), "--device", "cuda", "--quiet"]) == 2
    assert "CUDA" in capsys.readouterr().err


def test_compile_emit_prints_torch_code(tiny, capsys):
    assert main(["compile", str(tiny), "--emit"]) == 0
    out = capsys.readouterr().out
    assert "def dynamics(t, s" in out and "import torch" in out


def test_version_and_help():
    for flag in ("--version", "--help"):
        done = subprocess.run([sys.executable, "-m", "impsolve.cli", flag], capture_output=True, text=True)
        assert done.returncode == 0 and "impsolve" in done.stdout


def test_same_seed_same_numbers(tiny, tmp_path):
    runs = []
    for name in ("a", "b"):
        main([str(tiny), "--out", str(tmp_path / name), "--quiet", "--steps", "5"])
        data = json.loads((tmp_path / name / "result.json").read_text())
        runs.append((data["objective"]["history"], data["values"]))
    assert runs[0] == runs[1]


HEAVY = ('sympy', 'torch', 'scipy', 'matplotlib', 'pydantic', 'lark', 'impsolve.dsl')


def _loaded_after(statements: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    """The `modules` (default: the heavy ones) a fresh interpreter has loaded after running `statements`."""
    code = f"import sys\n{statements}\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in (done.stdout.strip().splitlines() or [""])[-1].split(",") if m]


def test_the_command_line_starts_without_sympy_torch_or_scipy() -> None:
    """Start-up (issue 16): `impsolve --help` and argument errors need neither the dsl nor the compiler
    nor the runtime, so `import impsolve.cli` (and `import impsolve`) load none of pydantic, Lark,
    SymPy, torch, SciPy; `--help` itself neither."""
    assert _loaded_after("import impsolve, impsolve.cli") == []
    assert _loaded_after("import contextlib, io, impsolve.cli\n"
                         "with contextlib.redirect_stdout(io.StringIO()):\n"
                         "    try:\n        impsolve.cli.main(['--help'])\n    except SystemExit:\n        pass") == []


def test_check_loads_the_compiler_but_not_torch(tiny) -> None:
    """`impsolve check` parses, checks and compiles (SymPy) but imports no torch, SciPy or matplotlib."""
    loaded = _loaded_after(f"import contextlib, io, impsolve.cli\n"
                           f"with contextlib.redirect_stdout(io.StringIO()):\n"
                           f"    assert impsolve.cli.main(['check', {str(tiny)!r}]) == 0")
    assert "sympy" in loaded and not {"torch", "scipy", "matplotlib"} & set(loaded)


OTHER_KINDS = ("impsolve.compiler.discrete", "impsolve.compiler.identify", "impsolve.compiler.fit",
               "impsolve.compiler.ode")


def test_check_imports_only_the_compiler_kinds_the_spec_needs(tiny, tmp_path) -> None:
    """Start-up (issue 16): the compiler imports a built-in time model or study on first use
    (compiler.kinds), so checking an ODE spec loads compiler.ode but not the discrete time model nor
    the identify and fit studies; checking a discrete spec loads compiler.discrete."""
    rollout = tmp_path / "walk.imp"
    rollout.write_text("state x = 0\nnext(x) = x + 1\nsteps 3\nminimize x(T)\n")
    loaded = {}
    for spec in (tiny, rollout):
        loaded[spec] = _loaded_after(f"import contextlib, io, impsolve.cli\n"
                                     f"with contextlib.redirect_stdout(io.StringIO()):\n"
                                     f"    assert impsolve.cli.main(['check', {str(spec)!r}]) == 0", OTHER_KINDS)
    assert loaded[tiny] == ["impsolve.compiler.ode"]
    assert loaded[rollout] == ["impsolve.compiler.discrete"]


def test_check_runs_without_the_cycle_collector_and_restores_it(tiny, monkeypatch, capsys) -> None:
    """Start-up (issue 16): the cycle collector is off while `check` imports, parses, checks and compiles,
    and on again after (off again if the caller had it off); the exit handler that skips the collections
    of interpreter shutdown is registered once however often `check` runs."""
    import impsolve.api
    states = []
    load = impsolve.api.load
    monkeypatch.setattr(impsolve.api, "load", lambda *a: states.append(gc.isenabled()) or load(*a))
    assert gc.isenabled()
    assert main(["check", str(tiny)]) == 0
    callbacks = atexit._ncallbacks()
    assert main(["check", str(tiny)]) == 0 and atexit._ncallbacks() == callbacks
    assert states == [False, False] and gc.isenabled()
    gc.disable()
    try:
        assert main(["check", str(tiny)]) == 0 and not gc.isenabled()
    finally:
        gc.enable()


def test_emit_outside_compile_is_refused_rather_than_ignored(tiny, capsys):
    """`impsolve SPEC --emit` used to train the spec in full and print no code."""
    assert main([str(tiny), "--emit"]) == 2
    assert "impsolve compile SPEC --emit" in capsys.readouterr().err


def test_a_reader_closing_the_pipe_is_not_an_internal_error(tiny):
    """`impsolve compile SPEC --emit | head -1`: the reader leaves before impsolve writes."""
    child = subprocess.Popen([sys.executable, "-m", "impsolve.cli", "compile", str(tiny), "--emit"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141 and "internal error" not in err and "Traceback" not in err
