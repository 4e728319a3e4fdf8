"""The experiment readout: did the pLTV campaign acquire more valuable users than business as usual?

Users carry the arm that acquired them in a ``users`` column (the campaign or ad set of the pLTV arm
vs the BAU arm; users outside the experiment have none). Per arm, over the users who have had
``maturity_days`` M days since signup by ``as_of`` ("matured by M"):

- users, payers (net revenue by M above 0), realized revenue per user by M;
- projected horizon LTV: the revenue realized so far (inside the horizon) plus the model's prediction of the
  rest, ``predicted_ltv × (1 − share earned by the user's age)`` (:mod:`pltv.maturity`), where the model
  is the champion of the largest registered send day ≤ M (every user in the readout is at least that old,
  so it scores them from the most data it can use) — the readout names it.

**lift = treatment mean / control mean − 1** with a percentile bootstrap interval (users resampled within
arms). The headline ``lift`` is the realized revenue per user by M: it needs no model and it is what finance
accepts; the projected lift sits beside it. With spend (``date, arm, spend``): CAC = spend / users acquired,
LTV/CAC, and the lift in LTV per unit spend. Platform ROAS is not the readout: the value drives both the
bidding and the ROAS Meta reports.

Precision: the interval's width shrinks as 1/√n, so an interval of ``target_width`` needs
``n × (width / target_width)²`` matured users per arm; the days that takes follow from the users still
maturing and each arm's acquisition pace so far.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from pltv.bootstrap import lift_draws, lift_interval
from pltv.errors import ConfigError, DataQualityError, InsufficientDataError, PltvError, SchemaError
from pltv.features import as_of_or_default, to_utc_naive
from pltv.maturity import MaturityCurve, maturity_curve

MIN_PAYERS = 30  # matured payers per arm below which a bootstrap of a heavy-tailed mean is not trusted
_DAY_S = 86_400.0


@dataclass(frozen=True, kw_only=True)
class ExperimentOptions:
    """Which column and values name the arms, and how the readout is computed."""

    arm_column: str
    treatment: str
    control: str
    maturity_days: int = 30
    horizon_days: int = 365  # used without a model; a projecting model brings its own
    target_width: float = 0.20  # the lift interval width (upper − lower) a decision needs
    as_of: datetime | str | None = None  # default: the day after the source's data ends
    level: float = 0.95
    n_boot: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.maturity_days < 1:
            raise ConfigError(f"--maturity-days must be at least 1, got {self.maturity_days}")
        if self.treatment == self.control:
            raise ConfigError("--treatment and --control must name different arms")
        if not 0 < self.level < 1 or not self.target_width > 0:
            raise ConfigError("the interval level must be in (0, 1) and the target width positive")


# ---- precision: how many users, how many days ---------------------------------------------------------


def users_for_width(users: int, width: float, target_width: float) -> int:
    """Users per arm an interval of ``target_width`` needs, from ``users`` giving ``width`` (∝ 1/√n)."""
    if not math.isfinite(width) or users <= 0:
        return 0
    return max(users, math.ceil(users * (width / target_width) ** 2))


def days_for_users(
    extra: int, days_to_mature: np.ndarray, *, per_day: float, maturity_days: int
) -> float | None:
    """Days until ``extra`` more users are matured: first the acquired users still maturing (their days to
    go in ``days_to_mature``), then new ones at ``per_day`` who each need ``maturity_days`` more.
    ``None`` when no pace is known."""
    if extra <= 0:
        return 0.0
    pending = np.sort(np.asarray(days_to_mature, dtype=float))
    if extra <= pending.size:
        return float(pending[extra - 1])
    if per_day <= 0:
        return None
    return float(maturity_days + (extra - pending.size) / per_day)


# ---- data -----------------------------------------------------------------------------------------------

_ARM_SQL = """
WITH arm_users AS (
    SELECT user_id, signup_at, CASE WHEN "{column}" = $treatment THEN 'treatment' ELSE 'control' END AS role
    FROM users WHERE "{column}" IN ($treatment, $control) AND signup_at < $as_of
),
final AS (
    SELECT u.user_id, u.role, u.signup_at,
           (epoch($as_of) - epoch(u.signup_at)) / 86400.0 AS age_days,
           coalesce(sum(t.revenue) FILTER (WHERE t.occurred_at < u.signup_at + to_days(CAST($m AS INTEGER))), 0)
               AS revenue_m,
           coalesce(sum(t.revenue) FILTER (WHERE t.occurred_at < u.signup_at + to_days(CAST($h AS INTEGER))), 0)
               AS revenue_to_date
    FROM arm_users u
    LEFT JOIN transactions t ON t.user_id = u.user_id AND t.occurred_at >= u.signup_at AND t.occurred_at < $as_of
    GROUP BY u.user_id, u.role, u.signup_at
)
SELECT * FROM final ORDER BY signup_at, user_id
"""


def _check_arms(con: duckdb.DuckDBPyConnection, options: ExperimentOptions, columns: tuple[str, ...]) -> None:
    col = options.arm_column
    if col not in columns or '"' in col or col in ("user_id", "signup_at"):
        raise SchemaError(f"users has no arm column {col!r}; pass --arm-column with one of its columns")
    found = dict(
        con.execute(
            f'SELECT CAST("{col}" AS VARCHAR), count(*) FROM users WHERE "{col}" IN ($t, $c) GROUP BY 1',
            {"t": options.treatment, "c": options.control},
        ).fetchall()
    )
    missing = [v for v in (options.treatment, options.control) if v not in found]
    if missing:
        labels = con.execute(
            f'SELECT CAST("{col}" AS VARCHAR) AS v, count(*) AS n FROM users WHERE "{col}" IS NOT NULL '
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 11"
        ).fetchall()
        # list the values only when they look like campaign labels (few, each shared by many users)
        hint = (
            "; values in that column: " + ", ".join(repr(v) for v, _ in labels)
            if 0 < len(labels) <= 10 and min(n for _, n in labels) >= 10
            else ""
        )
        raise DataQualityError(f"no user has users.{col} = {', '.join(map(repr, missing))}{hint}")


def arm_frame(
    con: duckdb.DuckDBPyConnection, options: ExperimentOptions, *, as_of, horizon_days: int
) -> pd.DataFrame:
    """One row per experiment user: ``role`` (treatment/control), ``signup_at``, ``age_days`` at ``as_of``,
    ``revenue_m`` (net revenue by M days), ``revenue_to_date`` (net revenue before ``as_of``, in horizon)."""
    sql = _ARM_SQL.replace("{column}", options.arm_column)
    params = {"treatment": options.treatment, "control": options.control, "as_of": to_utc_naive(as_of),
              "m": options.maturity_days, "h": horizon_days}  # fmt: skip
    return con.execute(sql, params).df()


def read_spend(path: str | Path) -> pd.DataFrame:
    """A spend file (CSV or Parquet: ``date, arm, spend``), checked: names the file, column and line."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the spend file {path}: {type(exc).__name__}") from exc
    missing = [c for c in ("date", "arm", "spend") if c not in frame.columns]
    if missing:
        raise SchemaError(f"spend file {path} lacks column(s) {missing}; expected date, arm, spend")
    spend = pd.to_numeric(frame["spend"], errors="coerce")
    dates = pd.to_datetime(frame["date"], errors="coerce", format="mixed")
    for name, bad in (("spend", spend.isna() | (spend < 0)), ("date", dates.isna())):
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header is line 1
            raise DataQualityError(
                f"spend file {path}, column {name!r}, line {line}: expected a "
                + ("non-negative number" if name == "spend" else "date YYYY-MM-DD")
            )
    return pd.DataFrame({"date": dates, "arm": frame["arm"].astype(str), "spend": spend})


# ---- projection with the champion model -----------------------------------------------------------------


@dataclass
class Projection:
    """A model that predicts horizon LTV from a send day's features: the registry's champion."""

    model: Any
    name: str
    version: str
    send_day: int

    @property
    def horizon_days(self) -> int:
        return int(self.model.horizon_days)

    def describe(self) -> str:
        return f"{self.name} v{self.version} (champion, send day {self.send_day})"

    def predict(self, con: duckdb.DuckDBPyConnection, users: pd.DataFrame, *, as_of) -> np.ndarray:
        """Predicted horizon LTV for ``users`` (``user_id``, ``signup_at``; each at least ``send_day`` days
        old at ``as_of``), from features of only the signups their span covers."""
        from datetime import timedelta

        from pltv.features import build_features

        user_ids = users["user_id"]
        send_from = to_utc_naive(users["signup_at"].min()) + timedelta(days=self.send_day)
        send_to = to_utc_naive(users["signup_at"].max()) + timedelta(days=self.send_day, microseconds=1)
        feats = build_features(
            con, send_day=self.send_day, as_of=as_of, horizon_days=self.horizon_days, population="send_window",
            send_from=send_from, send_to=send_to, event_names=self.model.event_names,
            categoricals=self.model.categoricals,
        )  # fmt: skip
        feats = feats.set_index("user_id").reindex(user_ids.astype(str)).reset_index()
        return np.asarray(self.model.predict(feats), dtype=float)


def champion_projection(tracking_uri: str, model_name: str, *, max_send_day: int) -> Projection | None:
    """The champion of the largest send day ≤ ``max_send_day`` registered as ``model_name`` (a template
    with ``{send_day}``), or ``None`` when no send day has a champion."""
    from pltv.registry import champion_version, load_model
    from pltv.registry import model_name as name_for
    from pltv.tracking import configure

    configure(tracking_uri, existing=True)
    for day in range(max_send_day, -1, -1):
        name = name_for(model_name, day)
        version = champion_version(tracking_uri, name)
        if version is not None:
            return Projection(load_model(tracking_uri, name, version), name, version, day)
    return None


# ---- the readout ----------------------------------------------------------------------------------------


@dataclass
class ArmReadout:
    role: str  # treatment | control
    value: str  # the arm column's value
    users: int  # acquired before as_of
    matured_users: int  # with M days since signup
    payers: int  # matured users with net revenue by M above 0
    revenue_per_user: float  # realized by M, matured users
    projected_ltv: float | None = None  # realized so far + predicted rest, matured users
    acquired_per_day: float = 0.0
    spend: float | None = None
    cac: float | None = None
    ltv_per_cac: float | None = None


@dataclass
class ExperimentReadout:
    as_of: datetime
    arm_column: str
    maturity_days: int
    horizon_days: int
    level: float
    arms: dict[str, ArmReadout]
    lift: float
    lift_ci: tuple[float, float]
    projected_lift: float | None = None
    projected_lift_ci: tuple[float, float] | None = None
    projection: str | None = None  # which model projected the horizon, or why nothing did
    share_source: str | None = None
    ltv_basis: str | None = None  # what LTV/CAC uses
    lift_per_spend: float | None = None
    lift_per_spend_ci: tuple[float, float] | None = None
    target_width: float = 0.20
    users_needed_per_arm: int = 0
    more_users_per_arm: int = 0
    more_days: float | None = None
    mature: bool = False
    maturity_note: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of"] = f"{self.as_of:%Y-%m-%d}"
        out["metric"] = f"revenue_per_user_by_{self.maturity_days}d"
        return out

    def render(self) -> str:
        pct = int(round(self.level * 100))
        lines = [
            f"experiment readout on users.{self.arm_column} as of {self.as_of:%Y-%m-%d} "
            f"(matured = {self.maturity_days} days since signup)",
            f"  {'arm':<10} {'value':<14} {'users':>8} {'matured':>8} {'payers':>7} "
            f"{'rev/user@' + str(self.maturity_days) + 'd':>12} {'proj. LTV':>10} {'CAC':>8} {'LTV/CAC':>8}",
        ]
        for arm in self.arms.values():
            proj = f"{arm.projected_ltv:10.2f}" if arm.projected_ltv is not None else f"{'n/a':>10}"
            cac = f"{arm.cac:8.2f}" if arm.cac is not None else f"{'':>8}"
            ratio = f"{arm.ltv_per_cac:8.2f}" if arm.ltv_per_cac is not None else f"{'':>8}"
            lines.append(
                f"  {arm.role:<10} {arm.value[:14]:<14} {arm.users:8,} {arm.matured_users:8,} {arm.payers:7,} "
                f"{arm.revenue_per_user:12.2f} {proj} {cac} {ratio}"
            )
        lo, hi = self.lift_ci
        lines.append(
            f"  lift in revenue per user by {self.maturity_days}d: {self.lift:+.1%} [{pct} % interval "
            f"{lo:+.1%}, {hi:+.1%}]"
        )
        if self.projected_lift is not None:
            plo, phi = self.projected_lift_ci
            lines.append(
                f"  lift in projected {self.horizon_days}d LTV:   {self.projected_lift:+.1%} "
                f"[{plo:+.1%}, {phi:+.1%}]"
            )
        lines.append(f"  projection: {self.projection}")
        if self.share_source:
            lines.append(f"  rest of horizon: predicted LTV x (1 - {self.share_source})")
        if self.lift_per_spend is not None:
            slo, shi = self.lift_per_spend_ci
            lines.append(
                f"  lift in LTV per unit spend ({self.ltv_basis}): {self.lift_per_spend:+.1%} [{slo:+.1%}, {shi:+.1%}]"
            )
        lines.append(f"  {'MATURE' if self.mature else 'NOT MATURE'}: {self.maturity_note}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _precision(
    frame: pd.DataFrame, matured: pd.Series, width: float, options: ExperimentOptions, as_of: datetime
) -> tuple[int, int, float | None]:
    """Users per arm the target width needs, how many more (the limiting arm), and the days that takes."""
    counts = {r: int((matured & (frame["role"] == r)).sum()) for r in ("treatment", "control")}
    need = users_for_width(min(counts.values()), width, options.target_width)
    more_users, days = 0, 0.0
    for role, have in counts.items():
        arm = frame[frame["role"] == role]
        span = max((as_of - arm["signup_at"].min()).total_seconds() / _DAY_S, 1.0)
        pending = options.maturity_days - arm.loc[~matured[arm.index], "age_days"].to_numpy()
        d = days_for_users(need - have, pending, per_day=len(arm) / span, maturity_days=options.maturity_days)
        more_users = max(more_users, need - have)
        days = None if d is None or days is None else max(days, d)
    return need, more_users, days


def read_experiment(
    con: duckdb.DuckDBPyConnection,
    options: ExperimentOptions,
    *,
    user_columns: tuple[str, ...],
    data_end=None,
    projection: Projection | None = None,
    projection_note: str | None = None,
    spend: pd.DataFrame | None = None,
) -> ExperimentReadout:
    """The readout over a source's canonical tables (``con``); see the module docstring."""
    _check_arms(con, options, user_columns)
    as_of = as_of_or_default(options.as_of, data_end)
    if as_of is None:
        raise ConfigError("the experiment readout needs as_of or the source's data_end")
    horizon = projection.horizon_days if projection is not None else options.horizon_days
    if options.maturity_days > horizon:
        raise ConfigError(f"--maturity-days {options.maturity_days} is past the {horizon}-day horizon")
    frame = arm_frame(con, options, as_of=as_of, horizon_days=horizon)
    matured = frame["age_days"] >= options.maturity_days
    roles = {"treatment": options.treatment, "control": options.control}
    values = {r: frame.loc[matured & (frame["role"] == r), "revenue_m"].to_numpy() for r in roles}
    if min(len(v) for v in values.values()) == 0:
        raise InsufficientDataError(
            f"no user of one arm has had {options.maturity_days} days since signup by {as_of:%Y-%m-%d}: "
            "wait, or read with a smaller --maturity-days"
        )
    kw = {"level": options.level, "n_boot": options.n_boot, "seed": options.seed}
    lift, lift_ci = lift_interval(values["treatment"], values["control"], **kw)
    arms = {}
    for role, value in roles.items():
        arm = frame[frame["role"] == role]
        span = max((as_of - arm["signup_at"].min()).total_seconds() / _DAY_S, 1.0)
        arms[role] = ArmReadout(
            role=role, value=value, users=len(arm), matured_users=len(values[role]),
            payers=int((values[role] > 0).sum()), revenue_per_user=float(values[role].mean()),
            acquired_per_day=len(arm) / span,
        )  # fmt: skip
    readout = ExperimentReadout(
        as_of=as_of, arm_column=options.arm_column, maturity_days=options.maturity_days, horizon_days=horizon,
        level=options.level, arms=arms, lift=lift, lift_ci=lift_ci, target_width=options.target_width,
    )  # fmt: skip

    ltv = {r: values[r] for r in roles}
    readout.ltv_basis = f"revenue per user by {options.maturity_days}d"
    if projection is not None:
        curve: MaturityCurve = maturity_curve(con, horizon_days=horizon, as_of=as_of)
        part = frame[matured].reset_index(drop=True)
        predicted = projection.predict(con, part[["user_id", "signup_at"]], as_of=as_of)
        rest = np.where(
            part["age_days"] >= horizon, 0.0, np.maximum(predicted, 0) * (1 - curve.at(part["age_days"]))
        )
        part["projected"] = part["revenue_to_date"] + rest
        for role in roles:
            ltv[role] = part.loc[part["role"] == role, "projected"].to_numpy()
            arms[role].projected_ltv = float(ltv[role].mean())
        readout.projected_lift, readout.projected_lift_ci = lift_interval(
            ltv["treatment"], ltv["control"], **kw
        )
        readout.projection = (
            f"{projection.describe()}: realized so far + predicted rest of the {horizon}-day horizon"
        )
        readout.share_source = curve.describe()
        readout.ltv_basis = f"projected {horizon}d LTV"
    else:
        readout.projection = projection_note or "none (no champion model for a send day <= the maturity days)"

    if spend is not None:
        by_arm = spend.groupby("arm")["spend"].sum()
        missing = [v for v in roles.values() if v not in by_arm.index]
        if missing:
            raise DataQualityError(f"the spend file has no rows for arm(s) {missing}")
        for role, value in roles.items():
            arm = arms[role]
            arm.spend = float(by_arm[value])
            arm.cac = arm.spend / arm.users if arm.users else None
            mean = float(ltv[role].mean())
            arm.ltv_per_cac = mean / arm.cac if arm.cac else None
        if arms["treatment"].cac and arms["control"].cac:
            factor = arms["control"].cac / arms["treatment"].cac  # LTV/CAC ratio = LTV ratio × CAC_c / CAC_t
            point, _ = lift_interval(ltv["treatment"], ltv["control"], **kw)
            draws = lift_draws(ltv["treatment"], ltv["control"], n_boot=options.n_boot, seed=options.seed)
            lo, hi = np.quantile((1 + draws) * factor - 1, [(1 - options.level) / 2, (1 + options.level) / 2])
            readout.lift_per_spend, readout.lift_per_spend_ci = (
                (1 + point) * factor - 1,
                (float(lo), float(hi)),
            )

    width = lift_ci[1] - lift_ci[0]
    need, more, days = _precision(frame, matured, width, options, as_of)
    readout.users_needed_per_arm, readout.more_users_per_arm, readout.more_days = need, more, days
    payers_ok = min(a.payers for a in arms.values()) >= MIN_PAYERS
    readout.mature = bool(payers_ok and width <= options.target_width)
    parts = [
        f"{min(a.matured_users for a in arms.values()):,} matured users in the smaller arm, "
        f"{min(a.payers for a in arms.values()):,} payers (need >= {MIN_PAYERS})",
        f"interval width {width:.1%} vs the {options.target_width:.1%} asked",
    ]
    if more > 0:
        when = (
            f"~{days:.0f} more days at the current pace" if days is not None else "no acquisition pace known"
        )
        parts.append(f"needs ~{need:,} matured users per arm (+{more:,}): {when}")
    readout.maturity_note = "; ".join(parts)
    span = (as_of - frame["signup_at"].min()).total_seconds() / _DAY_S
    if span < 21:
        readout.notes.append(
            f"the experiment's users span {span:.0f} days: Meta trains ~2 weeks and warms up ~7 days, so early "
            "users were acquired while the pLTV campaign was still learning"
        )
    return readout


def experiment_readout(
    source,
    options: ExperimentOptions,
    *,
    tracking_uri: str | None = None,
    model_name: str = "pltv_d{send_day}",
    spend_path: str | Path | None = None,
) -> ExperimentReadout:
    """Open ``source`` (a :class:`~pltv.config.SourceConfig` or path), find the champion for the projection
    (when ``tracking_uri`` is given) and read the experiment."""
    from pltv.sources import open_source

    spend = read_spend(spend_path) if spend_path is not None else None
    projection, note = None, None
    if tracking_uri is not None:
        try:
            projection = champion_projection(tracking_uri, model_name, max_send_day=options.maturity_days)
        except PltvError as exc:  # no store or no model: the realized readout stands on its own
            note = f"none ({str(exc).splitlines()[0]})"
    with open_source(source) as src:
        return read_experiment(
            src.con, options, user_columns=src.user_columns, data_end=src.quality.data_end,
            projection=projection, projection_note=note, spend=spend,
        )  # fmt: skip
