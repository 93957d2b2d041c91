"""Shared paths and fixtures of the test suite (pytest puts this folder on sys.path, so test
modules `from conftest import ROOT, SPECS`)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

import impsolve
from impsolve.compiler import tensor_lower

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SPEC_FILES = sorted(SPECS.glob("*.imp"))


def spec_path(name: str) -> Path:
    """The path of specs/<name>.imp."""
    return SPECS / f"{name}.imp"


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., str]:
    """write_spec(text, name="spec.imp") writes the text into tmp_path and returns the file's path."""
    def write(text: str, name: str = "spec.imp") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def value_and_grad(text: str, tensor: bool, monkeypatch) -> tuple["impsolve.Problem", float, list[torch.Tensor]]:
    """The spec compiled on the tensor path (forced, `tensor`) or scalarised: the problem, the
    objective at seed 0 and its gradient with respect to every parameter."""
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0 if tensor else 64)
    monkeypatch.setattr(tensor_lower, "MATRICES_AS_TENSORS", tensor)
    problem = impsolve.load(text)
    assert ("(tensor path)" in problem.source()) == tensor
    model = problem.compile("cpu", "float64", 0)
    value = model()
    return problem, float(value.detach()), list(torch.autograd.grad(value, list(model.parameters())))


def assert_paths_agree(text: str, monkeypatch) -> None:
    """The scalar and the forced tensor path give the same objective (1e-10) and gradients (1e-8)."""
    _, scalar, scalar_grads = value_and_grad(text, False, monkeypatch)
    _, tensor, tensor_grads = value_and_grad(text, True, monkeypatch)
    assert tensor == pytest.approx(scalar, rel=1e-10, abs=1e-12)
    for a, b in zip(scalar_grads, tensor_grads):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)
