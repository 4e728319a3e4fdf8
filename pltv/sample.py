"""A realistic sample business, written as a warehouse export (Parquet).

The generator is a small structural model of a DTC shop with a subscription line, so that a pLTV model and
the event designer have something true to find:

- signups over ``days`` (default 730) with growth and weekly seasonality;
- acquisition ``channel``/``platform``/``country`` that shift value;
- a latent user value ``z`` driving a zero-inflated, heavy-tailed revenue process: most users never pay,
  payers buy with decaying intensity (repeat buyers, a few whales), some subscribe monthly until they churn;
- refunds (~2-3 % of transaction rows are negative);
- early behaviour events (``session``, ``view_item``, ``add_to_cart``, ``trial_start``, ``checkout_start``)
  that carry real but noisy signal about later value;
- identifiers (:mod:`pltv.sample_identifiers`) with realistic coverage and mess (case and whitespace in emails, national and international
  phone formats, state names vs codes, ZIP+4, several date formats, missing values), ``consent`` false for
  a few percent, ``ldu`` for some US users, ``fbc``/``fbp`` in Meta's formats and the acquisition
  (conversion) event ids that Meta's delayed pLTV (``AppendValue``) refers to;
- a little export mess for the validator to count and drop: duplicated transaction rows, a few
  transactions stamped before signup (clock skew) and a few for users missing from ``users``;
- on request (:class:`Experiment`), an acquisition experiment: the ``paid_social`` users of the last weeks
  carry the arm that acquired them (``acq_arm`` = ``treatment`` for the pLTV campaign, ``control`` for
  business as usual, null for everyone else), and the treatment arm's revenue is ``1 + lift`` times what
  the same user would have spent, so the true lift in revenue per user is known exactly (in expectation,
  in every window). Without it the data is byte-identical to a sample written without the option.

Everything is vectorized with numpy; one seed gives the same bytes of data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pltv.errors import ConfigError
from pltv.sample_identifiers import concat, identifiers, zero_pad

DAY_S = 86_400

CHANNELS = np.array(["paid_social", "paid_search", "organic", "referral", "affiliate"])
CHANNEL_P = np.array([0.38, 0.22, 0.22, 0.10, 0.08])
CHANNEL_EFFECT = np.array([0.0, 0.15, 0.25, 0.35, -0.35])
PLATFORMS = np.array(["web", "ios", "android"])
PLATFORM_P = np.array([0.55, 0.27, 0.18])
PLATFORM_EFFECT = np.array([0.0, 0.30, -0.25])
COUNTRIES = np.array(["US", "GB", "CA", "DE", "FR", "AU", "BR"])
COUNTRY_P = np.array([0.52, 0.12, 0.08, 0.09, 0.07, 0.06, 0.06])
COUNTRY_EFFECT = np.array([0.15, 0.05, 0.05, 0.0, -0.05, 0.10, -0.55])

EVENT_NAMES = ["session", "view_item", "add_to_cart", "checkout_start", "trial_start"]


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """An acquisition experiment in the sample: the pLTV campaign (treatment) against business as usual.

    The ``paid_social`` users who signed up in the last ``days`` days are split at random, half to each arm
    (a draw of its own, so the rest of the data is the same as without the experiment); every transaction
    of a treatment user (refunds too) is ``1 + lift`` times its amount, so the true lift in revenue per
    user is ``lift`` by any number of days.
    """

    lift: float = 0.25
    days: int = 120
    column: str = "acq_arm"
    treatment: str = "treatment"
    control: str = "control"

    def __post_init__(self) -> None:
        if not self.lift > -1:
            raise ConfigError(f"the experiment's lift must be above -100 %, got {self.lift}")
        if self.days < 1:
            raise ConfigError(f"the experiment must last at least one day, got {self.days}")


def _arms(seed: int, experiment: Experiment, signup_at: pd.DatetimeIndex, end_at, channel: np.ndarray):
    """Per user: 1 treatment, 0 control, -1 outside the experiment (its own random stream)."""
    rng = np.random.default_rng([seed, 13])
    inside = (channel == "paid_social") & (signup_at >= end_at - pd.Timedelta(days=experiment.days))
    return np.where(inside, (rng.random(len(channel)) < 0.5).astype(int), -1)


def _choice(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    return rng.choice(len(p), size=n, p=p / p.sum())


def _signup_seconds(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """Seconds since the window start: growth x weekly seasonality, evening-heavy hours."""
    day = np.arange(days)
    growth = 0.45 + 1.1 * day / days
    weekday = (day + 3) % 7  # any fixed phase; weekends get more signups
    seasonality = np.where(weekday >= 5, 1.25, 1.0) * (1.0 + 0.15 * np.sin(2 * np.pi * day / 365.25))
    d = _choice(rng, n, growth * seasonality)
    hour_w = np.array([2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 7, 7, 6, 6, 6, 7, 8, 9, 10, 9, 7, 4], float)
    hour = _choice(rng, n, hour_w)
    return d * DAY_S + hour * 3600 + rng.integers(0, 3600, n)


def _repeat_index(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def generate_tables(
    n_users: int, *, seed: int, end: str = "2026-11-01", days: int = 730, experiment: Experiment | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return ``(users, transactions, events)`` DataFrames; timestamps are UTC (tz-aware)."""
    if n_users < 100:
        raise ConfigError(f"sample data needs at least 100 users, got {n_users}")
    try:
        end_at = pd.Timestamp(datetime.fromisoformat(end)).tz_localize("UTC")
    except ValueError as exc:
        raise ConfigError(f"--end must be a date YYYY-MM-DD, got {end!r}") from exc
    rng = np.random.default_rng(seed)
    n = n_users
    start = end_at - pd.Timedelta(days=days)
    signup_s = np.sort(_signup_seconds(rng, n, days))
    signup_at = start + pd.to_timedelta(signup_s, unit="s")
    horizon_s = (end_at - signup_at).total_seconds().to_numpy()  # seconds of history each user has

    ch, pl, co = _choice(rng, n, CHANNEL_P), _choice(rng, n, PLATFORM_P), _choice(rng, n, COUNTRY_P)
    effect = CHANNEL_EFFECT[ch] + PLATFORM_EFFECT[pl] + COUNTRY_EFFECT[co]
    z = rng.normal(size=n)  # latent value
    user_id = concat("u", zero_pad(rng.permutation(n) + 1, 8))
    user_ids = pd.Index(user_id.astype(object), dtype="string")  # categories for the long tables
    users = pd.DataFrame(
        {
            "user_id": pd.Series(user_id.astype(object), dtype="string"),
            "signup_at": signup_at,
            "country": COUNTRIES[co],
            "platform": PLATFORMS[pl],
            "channel": CHANNELS[ch],
        }
    )

    # ---- revenue process -------------------------------------------------------------------------------
    payer = rng.random(n) < 1 / (1 + np.exp(-(-1.75 + 1.0 * z + 1.2 * effect)))
    aov = np.exp(3.4 + 0.35 * z + 0.6 * effect + rng.normal(0, 0.25, n))  # ~$30 median order
    first_delay = np.where(rng.random(n) < 0.55, rng.exponential(0.25, n), rng.exponential(25, n)) * DAY_S
    intensity = np.exp(0.3 + 0.9 * z + effect + rng.normal(0, 0.5, n))  # expected repeat orders, lifetime
    n_repeat = rng.poisson(np.where(payer, intensity, 0))
    tau = rng.gamma(2.0, 60.0, n) * DAY_S  # how long a customer stays active
    subscriber = payer & (rng.random(n) < 1 / (1 + np.exp(-(-1.2 + 0.6 * z))))
    churn = np.clip(0.28 - 0.06 * z, 0.05, 0.6)
    n_months = np.where(subscriber, rng.geometric(churn), 0)
    price = np.round(np.exp(np.log(14.0) + 0.3 * (pl == 1) + rng.normal(0, 0.1, n)), 2)

    pid = np.flatnonzero(payer)
    t_first = first_delay[pid]
    r_idx = _repeat_index(n_repeat)
    t_rep = first_delay[r_idx] + rng.exponential(1.0, len(r_idx)) * tau[r_idx]
    s_idx = _repeat_index(n_months)
    month_k = np.concatenate([np.arange(k) for k in n_months[n_months > 0]]) if s_idx.size else np.zeros(0)
    t_sub = first_delay[s_idx] + (month_k + 1) * 30.4 * DAY_S + rng.normal(0, 3600, len(s_idx))
    owner = np.concatenate([pid, r_idx, s_idx])
    t_off = np.concatenate([t_first, t_rep, np.abs(t_sub)])
    amount = np.concatenate(
        [
            aov[pid] * rng.lognormal(0, 0.45, len(pid)),
            aov[r_idx] * rng.lognormal(0, 0.45, len(r_idx)),
            price[s_idx],
        ]
    )
    # refunds: a later negative row for ~2.7 % of purchases, full or partial
    refunded = rng.random(len(owner)) < 0.028
    ref_owner = owner[refunded]
    ref_t = t_off[refunded] + rng.exponential(6, refunded.sum()) * DAY_S
    ref_amt = -amount[refunded] * np.where(rng.random(refunded.sum()) < 0.75, 1.0, 0.5)
    owner = np.concatenate([owner, ref_owner])
    t_off = np.concatenate([t_off, ref_t])
    amount = np.concatenate([amount, ref_amt])
    if experiment is not None:
        arm = _arms(seed, experiment, signup_at, end_at, CHANNELS[ch])
        amount = amount * np.where(arm[owner] == 1, 1.0 + experiment.lift, 1.0)
    amount = np.round(amount, 2)
    keep = t_off < horizon_s[owner]
    owner, t_off, amount = owner[keep], t_off[keep], amount[keep]
    order = np.lexsort((t_off, owner))
    owner, t_off, amount = owner[order], t_off[order], amount[order]
    m = len(owner)
    tx = pd.DataFrame(
        {
            "transaction_id": concat("t", zero_pad(np.arange(m) + 1, 10)).astype(object),
            "user_id": user_id[owner].astype(object),
            "occurred_at": signup_at[owner] + pd.to_timedelta(t_off.astype(np.int64), unit="s"),
            "revenue": amount,
            "currency": "USD",
        }
    )
    # export mess, counted and dropped by the validator
    dup = tx.sample(frac=0.002, random_state=seed)
    skew = tx.sample(frac=0.0005, random_state=seed + 1).assign(
        transaction_id=lambda d: d["transaction_id"] + "s",
        occurred_at=lambda d: (
            d["user_id"].map(dict(zip(user_id.astype(object), signup_at, strict=True)))
            - pd.Timedelta(minutes=5)
        ),
    )
    orphan = tx.sample(frac=0.0003, random_state=seed + 2).assign(
        transaction_id=lambda d: d["transaction_id"] + "o", user_id=lambda d: "x" + d["user_id"]
    )
    tx = pd.concat([tx, dup, skew, orphan], ignore_index=True)
    tx["transaction_id"] = tx["transaction_id"].astype("string")
    tx["user_id"] = tx["user_id"].astype("string")

    # ---- early behaviour: real but noisy signal --------------------------------------------------------
    signal = 0.55 * z + 0.9 * payer + rng.normal(0, 0.8, n)
    rates = {
        "session": np.exp(1.2 + 0.35 * signal),
        "view_item": np.exp(0.9 + 0.45 * signal),
        "add_to_cart": np.exp(-0.9 + 0.7 * signal),
        "checkout_start": np.exp(-1.8 + 0.8 * signal),
        "trial_start": np.where(pl > 0, 0.6, 0.15) * (1 / (1 + np.exp(-(signal - 0.5)))),
    }
    ev_owner, ev_t, ev_name = [], [], []
    for name, rate in rates.items():
        counts = rng.poisson(rate) if name != "trial_start" else (rng.random(n) < rate).astype(int)
        idx = _repeat_index(counts)
        t = (
            rng.exponential(2.5, len(idx)) * DAY_S
            if name != "trial_start"
            else rng.exponential(0.3, len(idx)) * DAY_S
        )
        ok = (t < 30 * DAY_S) & (t < horizon_s[idx])
        ev_owner.append(idx[ok])
        ev_t.append(t[ok])
        ev_name.append(np.full(ok.sum(), EVENT_NAMES.index(name), dtype=np.int8))
    e_owner, e_t, e_name = np.concatenate(ev_owner), np.concatenate(ev_t), np.concatenate(ev_name)
    order = np.lexsort((e_t, e_owner))
    events = pd.DataFrame(
        {
            # categoricals: written dictionary-encoded (strings to every reader), no 8M Python strings
            "user_id": pd.Categorical.from_codes(e_owner[order], categories=user_ids),
            "occurred_at": signup_at[e_owner[order]] + pd.to_timedelta(e_t[order].astype(np.int64), unit="s"),
            "event_name": pd.Categorical.from_codes(e_name[order], EVENT_NAMES),
        }
    )
    users = pd.concat([users, identifiers(rng, users)], axis=1)
    if experiment is not None:
        labels = np.array([None, experiment.control, experiment.treatment], dtype=object)
        users[experiment.column] = pd.Series(labels[arm + 1], dtype="string")
    return users, tx, events


def _arrow_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table; UTC timestamp columns are converted from their UTC values directly
    (pyarrow's own conversion reads ``Series.values``, which pandas 3.1 deprecates for zoned columns)."""
    zoned = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    table = pa.Table.from_pandas(df.drop(columns=zoned), preserve_index=False)
    for c in zoned:
        naive = df[c].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        table = table.append_column(c, pa.array(naive, type=pa.timestamp(df[c].dtype.unit, tz="UTC")))
    return table.select(list(df.columns))


def _write_parts(df: pd.DataFrame, folder: Path, rows_per_part: int, on_part=lambda rows: None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    table = _arrow_table(df)
    for i, start in enumerate(range(0, max(len(df), 1), rows_per_part)):
        part = table.slice(start, rows_per_part)
        pq.write_table(part, folder / f"part-{i:05d}.parquet", compression="zstd")
        on_part(part.num_rows)


def generate_sample(
    out: str | Path,
    *,
    n_users: int,
    seed: int,
    end: str = "2026-11-01",
    experiment: Experiment | None = None,
    progress=None,
) -> dict:
    """Write ``users.parquet``, ``transactions/`` and ``events/`` (part files) under ``out``.

    ``progress``: a :class:`~pltv.progress.Progress` (or a line writer) for the generate and write stages."""
    from pltv.progress import Progress

    progress = Progress.coerce(progress)
    t0 = time.perf_counter()
    with progress.stage(f"generate {n_users:,} users (seed {seed})", unit="users") as stage:
        users, tx, events = generate_tables(n_users, seed=seed, end=end, experiment=experiment)
        stage.advance(len(users))
        stage.done(f"{len(tx):,} transactions, {len(events):,} events")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with progress.stage(f"write {out / 'users.parquet'}", total=len(users), unit="rows") as stage:
        pq.write_table(_arrow_table(users), out / "users.parquet", compression="zstd")
        stage.advance(len(users))
    for name, frame, rows in (
        ("transactions", tx, max(50_000, len(tx) // 8 + 1)),
        ("events", events, max(200_000, len(events) // 8 + 1)),
    ):
        with progress.stage(f"write {out / name}/", total=len(frame), unit="rows") as stage:
            _write_parts(frame, out / name, rows, on_part=stage.advance)
    return {
        "users": len(users),
        "transactions": len(tx),
        "events": len(events),
        "seconds": time.perf_counter() - t0,
    }
