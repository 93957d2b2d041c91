"""The optimal-control specs against their known answers (slow: minutes each on a loaded 2-core CPU).

The open-loop specs draw nothing at random (no nets, fixed initial values), so seeds 0-2 give the
same run; tests/test_specs_seeds.py runs them for every seed anyway."""
from __future__ import annotations

import math

import pytest

import impsolve

from conftest import spec_path


@pytest.mark.slow
def test_zermelo_open_loop_reaches_the_pontryagin_drift_with_the_terminal_condition(tmp_path):
    result = impsolve.solve(spec_path("zermelo_open_loop"), out=tmp_path, device="cpu")
    assert abs(result.values["x"] / 1.4125753 - 1) < 1e-3
    assert result.constraints["y(T) == l"].violation < 1e-8


@pytest.mark.slow
def test_minimum_time_double_integrator_reaches_two_sqrt_x0(tmp_path):
    result = impsolve.solve(spec_path("min_time_double_integrator"), out=tmp_path, device="cpu")
    assert abs(result.values["T"] / (2 * math.sqrt(1)) - 1) < 0.01
    assert all(c.violation < 1e-6 for c in result.constraints.values())
