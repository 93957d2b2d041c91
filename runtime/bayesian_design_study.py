"""The Bayesian experimental design study end to end: the rounds, the checks, result.json, rounds.csv
and rounds.png."""
from __future__ import annotations

import time
from pathlib import Path

from .bayesian_design import SequentialDesign
from .model import CompiledProblem
from .plots import plt, save_figure   # pyplot with the Agg backend
from .results import Check, DesignRound, Result, write_csv, write_json
from .results_folder import assemble_result, folder_for, objective_result, status_of
from .run_options import RunOptions


def run_design_study(model: CompiledProblem, options: RunOptions) -> Result:
    """Run every round, check the expects (each round, or on the final belief), write the results."""
    problem, study = model.problem, model.problem.design
    folder = folder_for(options, problem.name)
    start = time.perf_counter()
    runner = SequentialDesign(model, options.seed)
    rounds = runner.run(quiet=options.quiet)
    final = runner.final_checks()
    each = iter(_over_rounds([r.expects[k] for r in rounds]) for k in range(sum(study.each_round)))
    finals = iter(final)
    checks = [next(each) if flag else Check(**next(finals)) for flag in study.each_round]
    last = rounds[-1]
    values = {f"mean({p})": last.mean[p] for p in study.uncertain} | {f"var({p})": last.var[p] for p in study.uncertain}
    result = assemble_result(model, options, start, status=status_of(checks), steps=runner.steps,
                             objective=objective_result(model, last.criterion, [r.criterion for r in rounds]),
                             values=values, checks=checks, rounds=rounds)
    if folder is not None:
        write_json(folder / "result.json", result)
        write_rounds_csv(folder / "rounds.csv", rounds)
        plot_rounds(folder / "rounds.png", model, rounds)
        result.out_dir = str(folder)
    return result


def _over_rounds(records: list[Check]) -> Check:
    """One check for an `each round` expect: passed if it passed in every round; the numbers shown
    are those of the round with the largest error (among the failing rounds, if any)."""
    failing = [r for r in records if not r.passed]
    worst = max(failing or records, key=lambda r: r.error)
    return worst.model_copy(update={"passed": not failing})


def write_rounds_csv(path: Path, rounds: list[DesignRound]) -> None:
    """One row per round: design, prior, observation, posterior, error, criterion."""
    designs, params = list(rounds[0].design), list(rounds[0].mean)
    header = ["round", *designs, *(f"prior_mean({p})" for p in params), *(f"prior_var({p})" for p in params),
              "observation", *(f"mean({p})" for p in params), *(f"var({p})" for p in params),
              *(f"error({p})" for p in params), "criterion"]
    rows = [[n + 1, *(r.design[d] for d in designs), *(r.prior_mean[p] for p in params),
             *(r.prior_var[p] for p in params), r.observation, *(r.mean[p] for p in params),
             *(r.var[p] for p in params), *(r.error[p] for p in params), r.criterion] for n, r in enumerate(rounds)]
    write_csv(path, header, rows)


def plot_rounds(path: Path, model: CompiledProblem, rounds: list[DesignRound]) -> None:
    """As the report's figure 17: the belief (mean ± std, the truth dashed) against the round, the
    designs (against the expected ones of an `expect <design> == ... each round`), the error."""
    study = model.problem.design
    n = list(range(len(rounds) + 1))   # round 0: the prior
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    for k, (p, truth) in enumerate(zip(study.uncertain, study.truth)):
        mean = [study.prior_mean[k]] + [r.mean[p] for r in rounds]
        std = [study.prior_cov[k][k] ** 0.5] + [r.var[p] ** 0.5 for r in rounds]
        ax.plot(n, mean, color=f"C{k}", label=f"mean({p})")
        ax.fill_between(n, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], color=f"C{k}",
                        alpha=0.2, label=f"± std({p})")
        ax.axhline(truth, color=f"C{k}", ls="--", lw=1, label=f"truth {p} = {truth:g}")
    ax.set_title("belief")
    ax = axes[1]
    for k, d in enumerate(study.designs):
        ax.plot(n[1:], [r.design[d.name] for r in rounds], "o-", color=f"C{k}", ms=3, label=d.name)
    for i, name in enumerate(study.expected_designs):
        if name is not None:
            position = sum(study.each_round[:i])
            ax.plot(n[1:], [r.expects[position].reference for r in rounds], "k--", lw=1,
                    label=model.problem.expectations[i].text.partition(" each round")[0])
    ax.set_title("designs")
    ax = axes[2]
    for k, p in enumerate(study.uncertain):
        error = [abs(study.prior_mean[k] - study.truth[k])] + [r.error[p] for r in rounds]
        ax.semilogy(n, error, color=f"C{k}", label=f"|mean({p}) - truth|")
    ax.set_title("error")
    for ax in axes:
        ax.set_xlabel("round")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model.problem.name}: observe {study.text} + normal(0, {study.sigma:g})")
    save_figure(fig, path)
