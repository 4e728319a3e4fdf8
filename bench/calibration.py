"""How well is the model calibrated, and how much of that can a small out-of-time cohort show?

    .venv/bin/python bench/calibration.py [--samples 8] [--users 20000] [--population 1000000]
                                          [--send-days 0,1,3]

1. Calibration without test-cohort noise. For ``--samples`` independent samples the size of
   ``data/sample`` (seeds 1..N), every send day is trained as ``pltv train`` trains it; each model then
   scores the matured users of one large independent population from the same generator (another seed,
   no drift). Σpredicted / Σactual − 1 on that population is the model's own calibration error. It is
   printed for the shipped recalibration (factor fitted on all training cohorts) beside two alternatives:
   the factor of the forward-chained fold models (what training used before) and no factor.
2. The noise floor of the acceptance check. How often a *perfect* send-day-0 predictor (the population's
   mean LTV for every user) lands within |total bias| <= 5 % on a random cohort the size of the sample's
   out-of-time test cohort, with the 5-95 % range of that bias.

Samples are generated into a temporary folder (about a second per 20k users).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pltv.features import build_features, default_as_of
from pltv.sample import generate_sample
from pltv.sources import open_source
from pltv.train import fit_send_day

HORIZON = 365


def matured_features(path: Path, send_day: int) -> pd.DataFrame:
    with open_source(str(path)) as src:
        as_of = default_as_of(src.quality.data_end)
        frame = build_features(src.con, send_day=send_day, as_of=as_of, horizon_days=HORIZON)
    return frame[frame["actual_ltv"].notna()]


def population_bias(model, population: pd.DataFrame, scale: float) -> float:
    """Σ(early + scale · predicted future) / Σ actual − 1 over the population's matured users."""
    kept = model.scale_
    model.scale_ = 1.0
    try:
        future = model.predict_future(population).sum()
    finally:
        model.scale_ = kept
    return float(
        (population["early_net_revenue"].sum() + scale * future) / population["actual_ltv"].sum() - 1
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--population", type=int, default=1_000_000)
    parser.add_argument("--send-days", default="0,1,3")
    args = parser.parse_args()
    send_days = [int(d) for d in args.send_days.split(",")]
    warnings.filterwarnings("ignore", category=UserWarning)  # LightGBM's feature-name notices

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        generate_sample(root / "population", n_users=args.population, seed=10_000)
        population = {d: matured_features(root / "population", d) for d in send_days}
        print(
            f"population: {args.population:,} users (seed 10000), {len(population[send_days[0]]):,} matured, "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        rows = []
        for seed in range(1, args.samples + 1):
            generate_sample(root / f"s{seed}", n_users=args.users, seed=seed)
            for d in send_days:
                result = fit_send_day(
                    matured_features(root / f"s{seed}", d), send_day=d, horizon_days=HORIZON
                )
                chosen = result.validation.set_index("candidate").loc[result.candidate]
                rules = {
                    "shipped (all training cohorts)": result.model.scale_,
                    "fold-model factor": 1.0 / (1.0 + chosen["future_bias"]),
                    "no factor": 1.0,
                }
                for rule, scale in rules.items():
                    rows.append(
                        {
                            "seed": seed,
                            "send_day": d,
                            "rule": rule,
                            "population_bias": population_bias(result.model, population[d], scale),
                            "test_bias": result.scores["total_bias"]
                            if rule.startswith("shipped")
                            else np.nan,
                            "n_test": result.split["n_test"],
                        }
                    )
            print(f"sample seed {seed}: trained send days {send_days}", flush=True)

    table = pd.DataFrame(rows)
    rms = lambda s: float(np.sqrt(np.mean(np.square(s))))  # noqa: E731
    summary = (
        table.groupby(["send_day", "rule"], sort=False)["population_bias"]
        .agg(mean="mean", rms=rms, worst=lambda s: float(s.abs().max()))
        .round(3)
    )
    print(f"\n1. Population bias of models trained on {args.samples} samples of {args.users:,} users")
    print(summary.to_string())
    shipped = table[table["rule"].str.startswith("shipped")]
    print("\n   the same models on their own out-of-time test cohort (shipped rule):")
    print(shipped.pivot(index="seed", columns="send_day", values="test_bias").round(3).to_string())

    n_test = int(shipped["n_test"].median())
    actual = population[send_days[0]]["actual_ltv"].to_numpy()
    rng = np.random.default_rng(0)
    draws = 4000
    cohort_mean = np.array([actual[rng.integers(0, len(actual), n_test)].mean() for _ in range(draws)])
    bias = actual.mean() / cohort_mean - 1
    lo, hi = np.percentile(bias, [5, 95])
    print(
        f"\n2. A perfect send-day-0 predictor on {draws} random cohorts of {n_test:,} users: "
        f"|total bias| <= 5 % in {np.mean(np.abs(bias) <= 0.05):.0%} of them; 5-95 % range [{lo:+.3f}, {hi:+.3f}]"
    )


if __name__ == "__main__":
    main()
