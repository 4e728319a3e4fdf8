"""`pltv report`: one self-contained HTML page of signal health, for the people around an activation.

Six sections — signal health, match keys, values, calibration, experiment, models — each opening with one
sentence on what good looks like and the flags for what is off (:mod:`activation.health`). Charts are
:mod:`pltv.plots` figures inlined as SVG (text as paths), styles are inline, nothing is fetched: the file
opens from disk in any browser and can be mailed or attached to a ticket.

What the page never carries: identifiers (raw or hashed), user ids, event ids, run and spec ids, trace ids
or tokens — only counts, shares, values and Meta's error codes (their messages pass through
:func:`activation.redaction.redact`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from activation import health
from activation.ledger import TABLE, Ledger
from activation.redaction import redact
from activation.report_html import Charts, Section, escape, html_table, render_page
from activation.report_readouts import calibration_section, experiment_section
from activation.spec import EventSpec, load_spec
from activation.status import open_for_reading
from pltv.config import ExperimentConfig, SourceConfig
from pltv.contract import MATCH_COLUMNS

SECTIONS = (
    ("signal", "1. Signal health"),
    ("match", "2. Match keys"),
    ("values", "3. Values"),
    ("calibration", "4. Calibration"),
    ("experiment", "5. Experiment"),
    ("models", "6. Models"),
)

GOOD = {
    "signal": "Good: every eligible event is sent or skipped for a stated reason, nothing failed, unconfirmed "
    "or expired, and the trailing week stays above Meta's 100 events for the dataset (50 per ad set) "
    "and near the volume the design expected.",
    "match": "Good: every sent event carries at least one strong key (email, phone, external id, click id) "
    "and each key's coverage holds steady from day to day; a drop of more than 10 points is flagged.",
    "values": "Good: the sent values are distributed like the design's holdout (PSI under 0.1; above 0.2 "
    "the model or the population has shifted), with at least 5 distinct values and max >= 3x min.",
    "calibration": "Good: for matured cohorts Σ sent / Σ realized − 1 is near 0 with an interval covering 0, "
    "and the sent value ranks realized revenue (normalized Gini well above 0).",
    "experiment": "Good: the pLTV arm's revenue per user beats business as usual with a 95 % interval above 0, "
    "read only once the readout is mature.",
    "models": "Good: the champion beats the early-revenue baseline out of time (higher Gini, lower decile "
    "MAPE) and the spec in force pins the version that sent the events.",
}


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    source: SourceConfig
    ledger_path: Path
    tracking_uri: str
    spec_path: Path | None = None
    model_name: str = "pltv_d{send_day}"
    send_days: tuple[int, ...] = (0, 1, 3, 7)
    default_region: str = "US"
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)


@dataclass
class Report:
    """The page's content before it is HTML (what the tests and the CLI summary read)."""

    generated_at: datetime
    sections: dict[str, Section]
    facts: dict[str, str]

    def flags(self) -> list[str]:
        return [f"{s.title}: {f}" for s in self.sections.values() for f in s.flags]


# --------------------------------------------------------------------------------------------------------
# HTML helpers
# --------------------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------


@dataclass
class _LedgerView:
    rows: pd.DataFrame  # Ledger.rows()
    errors: list[dict[str, Any]]  # the most recent error groups
    history: tuple[pd.DataFrame, list[str]] | None  # issue 13's run history and `pltv status`'s warnings
    note: str  # non-empty when a run holds the ledger and this is the snapshot it left


def _read_ledger(path: Path) -> _LedgerView:
    """What the page needs from the ledger file, read as `pltv status` reads it: read-only, or through the
    snapshot a running job left (:func:`activation.status.open_for_reading`)."""
    con, note = open_for_reading(path)
    try:
        exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [TABLE]).fetchall()
        if not exists[0][0]:
            columns = ["event_id", "run_id", "spec_id", "model_version", "send_date", "event_name", "event_time",
                       "value", "state", "reason", "error_code", "error_subcode"]  # fmt: skip
            return _LedgerView(pd.DataFrame(columns=columns), [], None, note)
        ledger = Ledger(con)
        return _LedgerView(ledger.rows(), ledger.summary(errors=8).last_errors, _run_history(con), note)
    finally:
        con.close()


def _run_history(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, list[str]] | None:
    """The run history and `pltv status`'s warnings on it (:mod:`activation.history`, issue 13), or ``None``
    when this toolkit records none or no run was recorded yet."""
    if importlib.util.find_spec("activation.history") is None:
        return None
    from activation.history import read_runs, run_warnings

    runs = read_runs(con)
    return (runs, run_warnings(runs)) if len(runs) else None


def _history_table(runs: pd.DataFrame) -> str:
    """The run history's trend (as `pltv status` shows it, without run ids)."""
    frame = pd.DataFrame(
        {
            "run date": [f"{pd.Timestamp(d):%Y-%m-%d}" for d in runs["run_date"]],
            "dry run": runs["dry_run"].astype(bool).to_numpy(),
            "sent": runs["sent"].to_numpy(), "failed": runs["failed"].to_numpy(),
            "unconfirmed": runs["unconfirmed"].to_numpy(), "expired": runs["expired"].to_numpy(),
            "value p50": runs["value_p50"].to_numpy(), "PSI": runs["psi"].to_numpy(),
            "EMQ-style estimate": runs["emq_estimate"].to_numpy(), "sent, 7 days": runs["volume_7d"].to_numpy(),
            "expected/week": runs["expected_weekly"].to_numpy(),
        }
    )  # fmt: skip
    return "<h3>Run history (what each run recorded)</h3>" + html_table(frame.tail(14), left=("run date",))


def _source_users(
    options: ReportOptions, rows: pd.DataFrame, spec: EventSpec | None
) -> tuple[pd.DataFrame, list[str], Any, tuple[str, ...]]:
    """The users who can be behind the ledger's events (``user_id``, ``signup_at``, identifier columns),
    the identifier columns, the source's data end and its users columns.

    Only signups from the oldest catch-up window on are read (the first send date − 7 days − 1 day −
    the largest send day), so a large source is not loaded whole."""
    from pltv.sources import open_source

    with open_source(options.source) as src:
        ids = [c for c in MATCH_COLUMNS if c in src.user_columns]
        select = ", ".join(f'"{c}"' for c in ["user_id", "signup_at", *ids])
        if rows.empty:
            users = src.con.execute(f"SELECT {select} FROM users LIMIT 0").df()
        else:
            send_day = max([*options.send_days, spec.send_day if spec is not None else 0])
            since = pd.Timestamp(rows["send_date"].min()) - pd.Timedelta(
                days=health.WINDOW_DAYS + 1 + send_day
            )
            users = src.con.execute(
                f"SELECT {select} FROM users WHERE signup_at >= ?", [since.to_pydatetime()]
            ).df()
        return users, ids, src.quality.data_end, tuple(src.user_columns)


# --------------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------------


def _signal(section: Section, rows: pd.DataFrame, errors: list[dict[str, Any]], spec: EventSpec | None,
            flags: health.Flags, chart: Charts) -> None:  # fmt: skip
    counts = health.outcome_counts(rows)
    volume = health.trailing_volume(rows) if not rows.empty else pd.Series(dtype=int)
    health.delivery_flags(flags, counts, volume, spec)
    if rows.empty:
        return
    from pltv import plots

    section.body.append(chart(plots.outcomes_per_day(counts), "Events per send date, stacked by outcome."))
    section.body.append(
        chart(
            plots.weekly_volume(volume, health.volume_thresholds(spec)),
            "Events sent in the 7 days up to each send date, against Meta's thresholds and the design's "
            "expected weekly volume (the learning line is per ad set)."
            + (
                f" The ledger covers {span} day(s): points before the 7th day count fewer days."
                if (span := (volume.index[-1] - volume.index[0]).days + 1) < health.WINDOW_DAYS
                else ""
            ),
        )
    )
    table = counts.copy()
    table.insert(0, "send date", [f"{d:%Y-%m-%d}" for d in table.index])
    table["sent, trailing 7 days"] = volume.reindex(counts.index).to_numpy()
    section.body.append("<h3>Events per send date</h3>" + html_table(table, left=("send date",)))
    if errors:
        frame = pd.DataFrame(
            [
                {"Meta code": e["error_code"], "subcode": e["error_subcode"], "events": e["events"],
                 "message": redact(str(e["error_message"] or "")), "last seen": e["at"]}
                for e in errors
            ]
        )  # fmt: skip
        section.body.append(
            "<h3>Delivery failures (most recent first)</h3>"
            + html_table(
                frame,
                left=("message",),
                formats={"last seen": lambda t: f"{pd.Timestamp(t):%Y-%m-%d %H:%M} UTC"},
            )
        )
    else:
        section.body.append('<p class="small">Delivery failures: none recorded.</p>')


def _match(section: Section, rows: pd.DataFrame, users: pd.DataFrame, ids: list[str], options: ReportOptions,
           flags: health.Flags, chart: Charts) -> None:  # fmt: skip
    if rows.empty or not (rows["state"] == "sent").any():
        section.unavailable = "no sent events in the ledger yet"
        return
    keys = health.match_keys(users, rows, id_columns=ids, default_region=options.default_region)
    health.match_flags(flags, keys)
    from pltv import plots

    if len(keys.coverage.columns):
        section.body.append(
            chart(
                plots.key_coverage(keys.coverage),
                f"Share of the {keys.events:,} sent events carrying each key, per send date (recomputed from "
                "the source's identifiers with the daily job's normalization).",
            )
        )
    score = keys.estimated_score
    frame = pd.DataFrame(
        {
            "send date": [f"{d:%Y-%m-%d}" for d in score.index],
            "sent events": keys.events_by_day.reindex(score.index).fillna(0).astype(int).to_numpy(),
            "estimated EMQ (ours, 0-10)": score.to_numpy(),
        }
    )
    section.body.append(
        "<h3>EMQ-style estimate per send date</h3>"
        f'<p class="small">{escape(keys.label)}. A weighted share of the keys present; Meta computes its own Event '
        "Match Quality from what it can match, which this page cannot see.</p>"
        + html_table(frame, left=("send date",))
    )
    section.body.append(
        "<h3>Identifier map and invalid identifiers per key</h3>"
        '<p class="small">Where each key of the sent events comes from and how it leaves this process; invalid: '
        "values present in the source that the normalization (as Meta documents it) cannot use, not sent. "
        "Counts over the users of the sent events.</p>"
        + html_table(keys.invalid, left=("key", "source column", "sent as", "reasons"))
    )


def _values(
    section: Section, rows: pd.DataFrame, spec: EventSpec | None, flags: health.Flags, chart: Charts
) -> None:
    if rows.empty or not (rows["state"] == "sent").any():
        section.unavailable = "no sent events in the ledger yet"
        return
    drift = health.value_drift(rows, spec)
    recent = health.recent_values(rows)
    health.value_flags(flags, drift, spec, recent)
    from pltv import plots

    section.body.append(
        chart(
            plots.psi_trend(drift["psi"]),
            "PSI of the values sent in the 7 days up to each send date "
            "against the design's holdout distribution (x: too few events to compute it).",
        )  # fmt: skip
    )
    if spec is not None and spec.value_reference:
        ref = spec.value_reference
        section.body.append(
            chart(
                plots.value_bins(ref["edges"], ref["shares"], recent, unit=spec.currency),
                "Share of the last 7 days' sent values per decile bin of the design's holdout.",
            )
        )
    distinct, ratio = health.spread(recent)
    table = drift.reset_index()
    table.insert(0, "send date", [f"{d:%Y-%m-%d}" for d in table.pop("send_date")])
    table = table.rename(columns={"events": "sent events (7 days)", "psi": "PSI"})
    section.body.append(
        "<h3>Sent-value quantiles, trailing 7 days</h3>"
        + html_table(table, left=("send date",))
        + f'<p class="small">Last 7 days: {recent.size:,} events, {distinct:,} distinct values, max/min '
        f"{ratio:,.1f}.</p>"
    )


def _models(
    section: Section, rows: pd.DataFrame, spec: EventSpec | None, options: ReportOptions, chart: Charts
) -> None:
    from mlflow import MlflowClient

    from pltv import registry, tracking
    from pltv.errors import PltvError

    try:
        tracking.configure(options.tracking_uri, existing=True)
    except PltvError as exc:
        section.flags.append(str(exc))
        _spectable(section, spec)
        return
    client = MlflowClient(options.tracking_uri)
    names = [registry.model_name(options.model_name, d) for d in options.send_days]
    if spec is not None and spec.model_name not in names:
        names.append(spec.model_name)
    records = []
    hidden: dict[str, int] = {}  # older versions holding no alias: not shown
    for name in names:
        try:
            versions = client.search_model_versions(f"name='{name}'")
            aliases = {str(v): a for a, v in (client.get_registered_model(name).aliases or {}).items()}
        except Exception:  # MlflowException: the model is not registered
            continue
        newest = max((int(m.version) for m in versions), default=0)
        shown = [m for m in versions if str(m.version) in aliases or int(m.version) == newest]
        if len(shown) < len(versions):
            hidden[name] = len(versions) - len(shown)
        for mv in sorted(shown, key=lambda m: int(m.version)):
            metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            records.append(
                {
                    "model": name, "version": f"v{mv.version}", "role": aliases.get(str(mv.version), "-"),
                    "registered": f"{datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC):%Y-%m-%d}",
                    "trained as_of": str(mv.tags.get("as_of", ""))[:10],
                    "Gini": metrics.get("gini"), "baseline Gini": metrics.get("baseline_gini"),
                    "decile MAPE": metrics.get("decile_mape"), "baseline MAPE": metrics.get("baseline_decile_mape"),
                    "total bias": metrics.get("total_bias"),
                    "bias 95% interval": (metrics.get("total_bias_ci_low"), metrics.get("total_bias_ci_high")),
                }
            )  # fmt: skip
    if not records:
        section.flags.append(f"no registered model ({', '.join(names)}) in the tracking store")
    else:
        frame = pd.DataFrame(records)
        for r in records:
            gini, base = r["Gini"], r["baseline Gini"]
            if r["role"] == "champion" and gini is not None and base is not None and gini < base:
                section.flags.append(f"{r['model']} {r['version']} (champion): out-of-time Gini {gini:.3f} "
                                     f"under the baseline's {base:.3f}")  # fmt: skip
        section.body.append(
            "<h3>Registered versions, out-of-time metrics beside the baseline (early revenue × k)</h3>"
            + html_table(
                frame,
                left=("model", "version", "role"),
                formats={
                    "total bias": lambda v: "n/a" if v is None else f"{v:+.1%}",
                    "bias 95% interval": lambda v: "n/a" if None in v else f"[{v[0]:+.1%}, {v[1]:+.1%}]",
                },
            )
        )
        if hidden:
            section.body.append(
                '<p class="small">Shown: the champion, the challenger and the newest version of each model; '
                + escape(", ".join(f"{n}: {k} older version(s) without an alias" for n, k in hidden.items()))
                + " not shown.</p>"
            )
    if spec is not None and any(
        r["model"] == spec.model_name and r["version"] == f"v{spec.model_version}" for r in records
    ):
        from pltv import plots

        holdout = registry.holdout_for(options.tracking_uri, spec.model_name, spec.model_version)
        label = f"{spec.model_name} v{spec.model_version}"
        section.body.append(
            chart(
                plots.decile_calibration(
                    holdout["actual_ltv"],
                    {label: holdout["predicted_ltv"].to_numpy(),
                     "baseline (early revenue × k)": holdout["baseline_ltv"].to_numpy()},
                    unit=spec.currency,
                    title=f"the version the spec pins: out-of-time decile calibration ({len(holdout):,} users)",
                ),
                "Mean predicted (line) vs actual LTV with its 95 % interval per decile on the version's out-of-time "
                "cohort, beside the baseline; payers per decile below (the calibration notebook's figure).",
            )
        )  # fmt: skip
    if not rows.empty:
        sent = rows[rows["state"] == "sent"]
        per_day = (
            rows.assign(sent=rows["state"] == "sent")
            .groupby([pd.to_datetime(rows["send_date"]), "event_name", "model_version"], dropna=False)
            .agg(events=("state", "size"), sent=("sent", "sum"))
            .reset_index()
        )
        model = spec.model_name if spec is not None else "model"
        per_day["send date"] = [f"{d:%Y-%m-%d}" for d in per_day.pop("send_date")]
        per_day["model version"] = [f"{model} v{v}" for v in per_day.pop("model_version")]
        per_day = per_day[["send date", "event_name", "model version", "events", "sent"]]
        section.body.append(
            "<h3>Which version sent on each send date</h3>"
            + html_table(per_day, left=("send date", "event_name", "model version"))
        )
        if spec is not None and len(sent) and not (sent["spec_id"] == spec.spec_id).all():
            other = int((sent["spec_id"] != spec.spec_id).sum())
            section.flags.append(
                f"{other:,} sent event(s) came from another spec than the one in force (a redesign)"
            )
        champions = {r["model"]: r["version"] for r in records if r["role"] == "champion"}
        if spec is not None and champions.get(spec.model_name) not in (None, f"v{spec.model_version}"):
            section.flags.append(
                f"the spec pins {spec.model_name} v{spec.model_version}, the registry's champion is now "
                f"{champions[spec.model_name]}: run `pltv design` to move the event to it"
            )
    _spectable(section, spec)


def _spectable(section: Section, spec: EventSpec | None) -> None:
    """The spec in force: event name, mode, mapping, threshold, what the design expected."""
    if spec is None:
        section.flags.append("no spec in force was given (--spec): event name, mode and mapping unknown")
        return
    mapping = spec.value_mapping.to_dict()
    facts = [
        ("event name", spec.event_name), ("mode", spec.mode), ("send day", spec.send_day),
        ("model", f"{spec.model_name} v{spec.model_version}"), ("horizon", f"{spec.horizon_days} days"),
        ("currency", spec.currency), ("action source", spec.action_source),
        ("value mapping", ", ".join(
            f"{k}=[{', '.join(f'{x:,.2f}' for x in v)}]" if isinstance(v, list) else f"{k}={v}" for k, v in mapping.items()
        )),
        ("threshold", "none" if spec.threshold is None else f"{spec.threshold:,.2f} (top {spec.top_share:.0%})"),
        ("expected weekly volume", f"{spec.expected.get('weekly_volume', float('nan')):,.0f}"),
        ("expected future-only Gini", f"{spec.expected.get('future_gini', float('nan')):.3f}"),
        ("designed", spec.created_at[:10] or "n/a"),
    ]  # fmt: skip
    section.body.append(
        "<h3>The spec in force</h3>"
        + html_table(pd.DataFrame(facts, columns=["", "value"]), left=("", "value"))
    )


# --------------------------------------------------------------------------------------------------------
# page
# --------------------------------------------------------------------------------------------------------


def build_report(options: ReportOptions, *, now: datetime | None = None) -> tuple[Report, str]:
    """Read the ledger, the source, the registry and the readouts; return the content and its HTML."""
    now = now or datetime.now(UTC)
    view = _read_ledger(options.ledger_path)
    rows, errors = view.rows, view.errors
    spec = None
    if options.spec_path is not None:
        spec = load_spec(options.spec_path)
    users, ids, data_end, user_columns = _source_users(options, rows, spec)
    chart = Charts()
    sections = {key: Section(key, title) for key, title in SECTIONS}
    flags = health.Flags()
    _signal(sections["signal"], rows, errors, spec, flags, chart)
    _match(sections["match"], rows, users, ids, options, flags, chart)
    _values(sections["values"], rows, spec, flags, chart)
    history = view.history
    if history is not None:  # issue 13's run history: the page flags what `pltv status` warns about
        runs, warnings = history
        flags.use_status_warnings(warnings)
        sections["signal"].body.insert(0, _history_table(runs))
    for key in ("signal", "match", "values"):
        sections[key].flags[:0] = flags.get(key)
    calibration_section(sections["calibration"], rows, spec, data_end, source=options.source,
                        ledger_path=options.ledger_path, chart=chart)  # fmt: skip
    experiment_section(sections["experiment"], options.experiment, user_columns, source=options.source,
                       tracking_uri=options.tracking_uri, model_name=options.model_name, chart=chart)  # fmt: skip
    _models(sections["models"], rows, spec, options, chart)
    dates = sorted(pd.to_datetime(rows["send_date"]).unique()) if not rows.empty else []
    facts = {
        "generated": f"{now:%Y-%m-%d %H:%M} UTC",
        "send dates": f"{dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d} ({len(dates)} run dates)"
        if dates
        else "none",
        "source data ends": f"{pd.Timestamp(data_end):%Y-%m-%d %H:%M} UTC" if data_end is not None else "n/a",
        "event": f"{spec.event_name} ({spec.mode}, send day {spec.send_day})" if spec else "no spec given",
    }
    if view.note:
        facts["ledger"] = view.note
    report = Report(generated_at=now, sections=sections, facts=facts)
    return report, render_page(sections.values(), facts, GOOD)


def write_report(
    options: ReportOptions, out: str | Path, *, now: datetime | None = None
) -> tuple[Report, Path]:
    """Build the page and write it atomically to ``out``."""
    report, text = build_report(options, now=now)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return report, out
