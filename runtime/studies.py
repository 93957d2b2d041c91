"""The built-in studies: importing this module registers the train, design, identify and fit runners."""
from __future__ import annotations

from .bayesian_design_study import run_design_study
from .fit_study import run_fit
from .identify import run_identify
from .kinds import register_runner
from .train_study import run_train

BUILT_IN = {"train": run_train, "design": run_design_study, "identify": run_identify, "fit": run_fit}
for _name, _runner in BUILT_IN.items():
    register_runner(_name, _runner)
