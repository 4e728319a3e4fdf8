"""Coverage of the experiment readout's 95 % lift interval on generated data with a known true lift.

Each seed writes a sample whose treatment arm spends ``1 + lift`` times what its users would have spent
(:class:`pltv.sample.Experiment`), reads it with :func:`pltv.experiment.experiment_readout` (realized revenue
per user by M days, no model: the projected lift depends on a model trained per seed, and its truth is not
``lift`` once the model misses the arm's uplift in the unrealized part) and counts the seeds whose interval
covers the truth. Prints per-seed lines and the coverage; exits 1 when it is below the acceptance
(18 of 20 seeds).

With ``--projected`` each seed also trains a send-day-7 model (one MLflow store per seed) and counts the
coverage of the projected horizon-LTV lift too: the revenue of every window is scaled, so its truth is also
``lift``, but the model does not know the arm and projects the treatment's unrealized rest only as far as
its early revenue shows it.

    .venv/bin/python bench/lift.py [--seeds 20] [--users 40000] [--lift 0.25] [--maturity-days 30] [--projected]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from pltv.experiment import ExperimentOptions, experiment_readout
from pltv.sample import Experiment, generate_sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=40_000)
    parser.add_argument("--lift", type=float, default=0.25)
    parser.add_argument("--maturity-days", type=int, default=30)
    parser.add_argument("--experiment-days", type=int, default=120)
    parser.add_argument(
        "--projected", action="store_true", help="also train a model per seed and read the projection"
    )
    args = parser.parse_args()
    options = ExperimentOptions(
        arm_column="acq_arm", treatment="treatment", control="control", maturity_days=args.maturity_days
    )
    covered, widths, t0 = 0, [], time.perf_counter()
    projected_covered = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            out = Path(tmp) / f"s{seed}"
            generate_sample(
                out,
                n_users=args.users,
                seed=seed,
                experiment=Experiment(lift=args.lift, days=args.experiment_days),
            )
            uri = None
            if args.projected:
                from pltv.train import train

                uri = f"sqlite:///{Path(tmp) / f'm{seed}' / 'mlflow.db'}"
                train(out, send_days=(7,), tracking_uri=uri, promote=True)
            r = experiment_readout(out, options, tracking_uri=uri)
            lo, hi = r.lift_ci
            hit = lo <= args.lift <= hi
            covered += hit
            widths.append(hi - lo)
            arm = r.arms["treatment"]
            print(
                f"seed {seed:2d}: lift {r.lift:+.1%} [{lo:+.1%}, {hi:+.1%}] "
                f"{'covers' if hit else 'MISSES'} {args.lift:+.0%}  "
                f"(matured users per arm ~{arm.matured_users:,}, payers {arm.payers:,})",
                flush=True,
            )
            if r.projected_lift is not None:
                plo, phi = r.projected_lift_ci
                projected_covered += plo <= args.lift <= phi
                print(
                    f"         projected {r.horizon_days}d LTV lift {r.projected_lift:+.1%} [{plo:+.1%}, {phi:+.1%}]"
                )
    widths.sort()
    print(
        f"\ncoverage: {covered}/{args.seeds} seeds' 95 % intervals cover the true lift {args.lift:+.0%} "
        f"(acceptance >= {round(0.9 * args.seeds)}); median width {widths[len(widths) // 2]:.1%}; "
        f"{time.perf_counter() - t0:.0f}s"
    )
    if args.projected:
        print(f"projected LTV lift: {projected_covered}/{args.seeds} intervals cover {args.lift:+.0%}")
    return 0 if covered >= round(0.9 * args.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
