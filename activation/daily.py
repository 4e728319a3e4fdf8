"""The daily job: score the users who reached the send day and deliver their events, exactly once in effect.

For run date ``D`` (``as_of`` = ``D`` 00:00 UTC):

1. select the users whose send moment ``signup_at + send_day days`` fell on the day before ``D``, plus the
   catch-up: earlier users still inside Meta's 7-day window whose event has no ledger row yet (or was left
   ``pending`` by a dead run, or ran out of retries);
2. in bounded chunks (memory does not grow with the number of users): compute their features with the
   training SQL (:func:`pltv.features.build_features`), score them with the model version the spec pins,
   map values as the spec says, normalize and hash identifiers, build events (skips get reasons);
3. deliver through the client and the ledger (:func:`activation.delivery.deliver`), or with ``dry_run``
   write the exact request bodies (without the token) to an outbox file and send nothing. Pipelined
   (:func:`activation.pipeline.pipelined`): chunk k+1 is scored, hashed and built while chunk k is in flight.

:meth:`DailyOptions.from_config` holds the delivery rules of the shell (token, pixel, the replay clock
refused for Meta); the CLI only reads the environment and calls it.

The run's :class:`DailyReport` says what happened; :func:`exit_code` turns it into the CLI's exit code.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from activation.client import CapiClient, ClientConfig, chunk, request_body
from activation.daily_report import PSI_MIN_EVENTS, DailyReport
from activation.delivery import deliver_pipelined
from activation.due import ScoreJob, open_due, user_columns, window_start
from activation.endpoint import is_meta_host
from activation.errors import ClientConfigError, DailyRunError, LedgerError, RunStopped, SourceDistrusted
from activation.events import plan_events
from activation.history import record_from_report, record_run
from activation.ledger import Ledger, RunInfo
from activation.ledger_schema import bind_pixel
from activation.meta import DEDUP_WINDOW_S, MAX_AGE_DAYS, MAX_EVENTS_PER_REQUEST
from activation.pipeline import pipelined
from activation.preflight import source_doubts
from activation.quality import estimate_match_quality
from activation.redaction import log_event
from activation.report import population_stability_index
from activation.runlock import run_lock, write_snapshot
from activation.settings import event_id_for
from activation.spec import EventSpec, check_spec_model, load_spec
from activation.types import EventPlan
from pltv.config import Config, SourceConfig
from pltv.contract import MATCH_COLUMNS
from pltv.progress import Progress

log = logging.getLogger("activation.daily")

# an event that may have reached Meta is re-sent only while Meta's dedup window is open, less this margin
# (a run takes time; the re-send must land inside the window)
RESEND_MARGIN_S = 3600


@dataclass(frozen=True, kw_only=True)
class DailyOptions:
    run_date: date
    spec_path: Path
    source: SourceConfig
    tracking_uri: str
    ledger_path: Path
    client: ClientConfig | None  # None only for dry runs
    dry_run: bool = False
    outbox_dir: Path | None = None  # dry runs: where request bodies go (default: beside the ledger)
    chunk_size: int = 50_000
    catch_up_days: float = MAX_AGE_DAYS
    default_region: str = "US"
    now: datetime | None = None  # the send clock for a replay against the sandbox; None: the real time
    engine: str = "duckdb"  # where the window's users are selected, featurized and scored (activation.due)
    spark_master: str | None = None  # --engine spark: the master URL (default local[*] or the active session)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        run_date: date,
        spec_path: Path,
        dry_run: bool = False,
        access_token: str | None = None,
        app_secret: str | None = None,
        test_event_code: str | None = None,
        replay_now: str | None = None,
        engine: str = "duckdb",
        spark_master: str | None = None,
    ) -> DailyOptions:
        """Options for one run from the configuration (``[capi]``, ``[source]``, ``[mlflow]``) and the secrets
        the caller read from the environment. Raises :class:`ClientConfigError` for a run that cannot work:
        no token or pixel id for a live run, a replay clock (``replay_now``, ISO UTC) aimed at Meta.
        ``engine`` and ``spark_master`` are checked when the run opens the source (:func:`open_due`)."""
        clock = None
        if replay_now is not None:
            if is_meta_host(config.capi.graph_url) and not dry_run:
                raise ClientConfigError(
                    "--now replays history against a sandbox (or in a --dry-run); it is refused for sending "
                    "to Meta's Graph API"
                )
            from activation.sandbox_state import parse_now

            try:  # the sandbox's own reading of --now
                clock = datetime.fromtimestamp(parse_now(replay_now), UTC)
            except ValueError as exc:
                raise ClientConfigError(str(exc)) from None
        if not dry_run:
            if not access_token:
                raise ClientConfigError(
                    "META_ACCESS_TOKEN is not set: export the system-user token (or use --dry-run)"
                )
            if not config.capi.pixel_id:
                raise ClientConfigError("no pixel id: pass --pixel-id or set [capi] pixel_id in pltv.toml")
        client = None
        if config.capi.pixel_id or dry_run:  # a dry run's outbox carries the same fields as the live bodies
            client = ClientConfig(
                pixel_id=config.capi.pixel_id or "dry-run",  # a dry run builds no URL from it
                access_token=access_token or "",
                app_secret=app_secret or None,
                graph_url=config.capi.graph_url,
                api_version=config.capi.api_version,
                test_event_code=test_event_code,
            )
        return cls(
            run_date=run_date,
            spec_path=spec_path,
            source=config.source,
            tracking_uri=config.mlflow.tracking_uri,
            ledger_path=Path(config.capi.ledger),
            client=client,
            dry_run=dry_run,
            default_region=config.capi.default_region,
            now=clock,
            engine=engine,
            spark_master=spark_master,
        )


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day)


def _select(
    frame: pd.DataFrame, ledger: Ledger, spec: EventSpec, as_of: datetime, data_end: datetime | None,
    *, write: bool = True,
) -> tuple[pd.DataFrame, int, int, int]:  # fmt: skip
    """Of the window's users (``user_id, send_at`` by send moment, from the engine), the day's users plus
    the catch-up users whose event is still owed, with event ids; how many were deferred because their send
    moment is after the source's last row (``data_end``): their feature window is not fully in the data,
    and a value sent now would be too low, once; and how many were left out because an earlier spec's event
    of the same name already reached them (per pixel, one value event per user and event name, whatever
    spec is current); and how many of that earlier spec's rows were settled as unconfirmed on the way."""
    frame = frame[["user_id", "send_at"]].copy()
    spec_id = spec.spec_id
    frame["event_id"] = [event_id_for(spec_id, u) for u in frame["user_id"]]
    today = frame["send_at"] >= as_of - timedelta(days=1)
    owed = ~frame["event_id"].isin(ledger.settled(frame["event_id"]))
    frame["catch_up"] = ~today
    frame = frame[today | owed]
    served = np.zeros(len(frame), dtype=bool)
    unconfirmed = 0
    for old in ledger.other_specs(event_name=spec.settings.event_name, spec_id=spec_id):
        old_ids = [event_id_for(old, u) for u in frame["user_id"]]
        done, settled = ledger.supersede(old_ids, write=write)
        unconfirmed += settled
        served |= np.fromiter((i in done for i in old_ids), dtype=bool, count=len(old_ids))
    frame = frame[~served]
    late = frame["send_at"] > data_end if data_end is not None else pd.Series(False, index=frame.index)
    return frame[~late].reset_index(drop=True), int(late.sum()), int(served.sum()), unconfirmed


def _outbox_write(path: Path, payloads: list[dict], client: ClientConfig | None) -> None:
    """The request bodies the live run would POST, minus ``access_token``/``appsecret_proof``."""
    with path.open("ab") as fh:
        for batch in chunk(payloads, client.batch_size if client else MAX_EVENTS_PER_REQUEST):
            fh.write(request_body(batch, client, secrets=False) + b"\n")


def _check_run_date(run_date: date, now: datetime) -> None:
    """A run date whose events Meta would refuse as too old (or that lies after the send clock) is refused
    before anything is loaded, with the fix; ``--date 0001-01-01`` is one of them."""
    now_day = now.astimezone(UTC).date()
    if run_date < now_day - timedelta(days=int(MAX_AGE_DAYS)):
        raise DailyRunError(
            f"run date {run_date} is {(now_day - run_date).days} days before the send clock ({now_day}): "
            f"Meta refuses events older than {MAX_AGE_DAYS:g} days. To replay that day against the sandbox, "
            f"add --now {run_date}T01:00:00"
        )
    if run_date > now_day + timedelta(days=1):
        raise DailyRunError(
            f"run date {run_date} is after the send clock ({now_day}): its users' send moments have not "
            "happened yet; run it on that day (or replay with --now against the sandbox)"
        )


def run_daily(
    options: DailyOptions, *, now: datetime | None = None, model=None, progress: Progress | None = None
) -> DailyReport:
    """Run one day. ``now`` is the send clock (default: the real time); ``model`` skips the registry;
    ``progress`` shows the stages (source, selection, score + hash + build + send with counts; silent by
    default).

    The ledger's run lock is taken first: a second concurrent run on the same ledger stops at once."""
    now = now or options.now or datetime.now(UTC)
    _check_run_date(options.run_date, now)
    with run_lock(options.ledger_path, run_date=options.run_date):
        return _run_daily(options, now=now, model=model, progress=Progress.coerce(progress))


def _run_daily(options: DailyOptions, *, now: datetime, model=None, progress: Progress) -> DailyReport:
    from pltv.features import CATEGORICALS, to_utc_naive
    from pltv.registry import load_model

    t0 = time.perf_counter()
    spec = load_spec(options.spec_path)
    settings = spec.event_settings()
    if model is None:
        check_spec_model(spec, options.tracking_uri)
        try:
            model = load_model(options.tracking_uri, spec.model_name, spec.model_version)
        except Exception as exc:  # the registry's own errors name what is missing
            raise DailyRunError(
                f"cannot load model {spec.model_name} version {spec.model_version} pinned by the spec "
                f"from {options.tracking_uri}: {exc}"
            ) from exc
    if not options.dry_run and options.client is None:
        raise DailyRunError("a live run needs a client configuration (pixel id and META_ACCESS_TOKEN)")
    run_id = f"run-{options.run_date:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    report = DailyReport(
        run_id=run_id, run_date=options.run_date, spec_id=spec.spec_id,
        model=f"{spec.model_name}/{spec.model_version}", dry_run=options.dry_run,
    )  # fmt: skip
    as_of = _day_start(options.run_date)
    values_sent: list[np.ndarray] = []
    stage = Counter()

    def timed(name: str, t: float) -> None:
        stage[name] += time.perf_counter() - t

    t = time.perf_counter()
    try:
        with progress.stage(
            "open + validate the source" + (" on Spark" if options.engine == "spark" else ""), unit="users"
        ) as opening:
            source = open_due(options.engine, options.source, spark_master=options.spark_master)
            opening.advance(source.quality.users)
    except Exception as exc:
        raise DailyRunError(f"cannot open the source: {exc}") from exc
    timed("source", t)
    doubts = source_doubts(source.quality, as_of=as_of)
    if doubts:
        source.close()
        raise SourceDistrusted(
            "the source cannot be trusted for this run, so nothing was sent: " + "; ".join(doubts)
        )
    categoricals = getattr(model, "categoricals", CATEGORICALS)
    lost = [c for c in categoricals if c not in CATEGORICALS and c not in source.user_columns]
    if lost:  # a renamed or dropped warehouse column would silently score everyone as "unknown"
        source.close()
        raise DailyRunError(
            f"the model reads users column(s) {lost} (configured extra_categoricals) that the source no "
            f"longer has; restore them or map them in [source.columns.users]"
        )
    outbox = None
    if options.dry_run:
        folder = options.outbox_dir or options.ledger_path.parent / "outbox"
        outbox = folder / f"{options.run_date:%Y-%m-%d}-{run_id}.jsonl"
        try:  # beside the ledger by default: a ledger folder that does not exist fails as a live run would
            folder.mkdir(parents=options.outbox_dir is not None, exist_ok=True)
            outbox.write_text("")
        except OSError as exc:
            source.close()
            raise DailyRunError(f"cannot write the dry-run outbox {outbox}: {exc.strerror or exc}") from None
        report.outbox = outbox
    job = ScoreJob(
        send_day=spec.settings.send_day, horizon_days=spec.horizon_days, as_of=as_of, model=model,
        model_uri=f"models:/{spec.model_name}/{spec.model_version}", tracking_uri=options.tracking_uri,
        categoricals=categoricals,
        user_cols=user_columns(source.user_columns),
    )  # fmt: skip
    t = time.perf_counter()
    try:  # the engine's part, before the ledger opens: an engine that fails leaves the ledger untouched
        with progress.stage(source.window_label, unit="users") as computing:
            window = source.window(job, window_start(as_of, now, options.catch_up_days))
            computing.advance(len(window))
    except BaseException:
        source.close()
        raise
    timed(source.window_stage, t)
    started = time.monotonic()

    def ledger_clock() -> datetime:  # the send clock (a replay's too), running on from ``now``
        return now + timedelta(seconds=time.monotonic() - started)

    with source, Ledger(options.ledger_path, clock=ledger_clock) as ledger:
        t = time.perf_counter()
        data_end = source.quality.data_end
        report.data_end = to_utc_naive(data_end) if data_end is not None else None
        empty = ledger.is_empty()
        if not options.dry_run:  # a dry run leaves the ledger as it found it
            bind_pixel(ledger.con, options.client.pixel_id, options.ledger_path)
            # first what may have reached Meta and can no longer be re-sent safely, then what is too old
            report.unconfirmed = ledger.settle_unconfirmed(now=now, window_s=DEDUP_WINDOW_S - RESEND_MARGIN_S)
            report.expired = ledger.expire(older_than=now - timedelta(days=settings.max_age_days))
        with progress.stage("select the users due", unit="users") as selecting:
            selected, report.deferred, report.served_before, superseded = _select(
                window, ledger, spec, as_of, report.data_end, write=not options.dry_run
            )
            selecting.advance(len(selected))
        report.unconfirmed += superseded
        timed("select", t)
        report.eligible, report.catch_up = len(selected), int(selected["catch_up"].sum())
        report.new_ledger = options.ledger_path if empty and report.catch_up > 0 else None
        if report.new_ledger:
            log_event(log, "activation.new_ledger_with_catch_up", logging.WARNING, run_id=run_id,
                      ledger=str(options.ledger_path), catch_up=report.catch_up)  # fmt: skip
        if not options.dry_run:
            write_snapshot(ledger.con, options.ledger_path)  # what `pltv status` reads while this run goes on
        if report.deferred:
            log_event(log, "activation.deferred_for_data", logging.WARNING, run_id=run_id,
                      deferred=report.deferred, data_end=f"{report.data_end:%Y-%m-%dT%H:%M:%S}")  # fmt: skip
        log_event(log, "activation.daily_started", run_id=run_id, eligible=report.eligible,
                  catch_up=report.catch_up, spec_id=spec.spec_id)  # fmt: skip
        run = RunInfo(run_id=run_id, spec_id=spec.spec_id, send_date=options.run_date,
                      model_version=str(spec.model_version))  # fmt: skip
        client = None if options.dry_run else CapiClient(options.client)
        key_sets: Counter = Counter()  # user_data key combinations sent: memory bounded by combinations

        def prepare(part: pd.DataFrame) -> EventPlan:
            """Chunk k+1's features, scores, hashes and events, built while chunk k is in flight."""
            users = source.scored(job, part, timed)  # the engine times its features and scores
            t = time.perf_counter()
            predicted = np.asarray(users["predicted_ltv"], dtype=float)
            mapped = predicted if spec.settings.mode == "threshold" else spec.value_mapping.apply(predicted)
            users["predicted_ltv"] = mapped
            id_cols = [c for c in job.user_cols if c in MATCH_COLUMNS]
            plan = plan_events(
                users, settings, now=now, id_columns=id_cols, default_region=options.default_region
            )  # skips keep their reasons
            timed("hash+build", t)
            sending.advance(len(part))
            report.planned += len(plan.events)
            report.skipped.update(plan.skip_reasons())
            if plan.identity is not None:
                report.identity_dropped.update(plan.identity.dropped)
            key_sets.update(frozenset(e.payload["user_data"]) for e in plan.events)
            values_sent.append(np.array([e.value for e in plan.events]))
            return plan

        def write_outbox(plan: EventPlan) -> None:
            """A dry run's chunk k: the request bodies to the outbox, in the background like a delivery."""
            _outbox_write(outbox, [e.payload for e in plan.events], options.client)

        parts = (
            selected.iloc[i : i + options.chunk_size] for i in range(0, len(selected), options.chunk_size)
        )
        t = time.perf_counter()
        prepared_before = sum(stage.values())
        what = "outbox" if options.dry_run else "send"
        try:
            with progress.stage(f"score, hash, build, {what}", total=len(selected), unit="users") as sending:
                if options.dry_run:
                    for _ in pipelined(parts, prepare, write_outbox):
                        pass
                else:
                    for delivery in deliver_pipelined(parts, prepare, client=client, ledger=ledger, run=run):
                        report.add(delivery)
        except RunStopped as exc:  # the run history keeps the stopped run too, with why
            _record_history(ledger, report, spec, stopped=exc)
            raise
        finally:
            if client is not None:
                client.close()
            if not options.dry_run:
                write_snapshot(ledger.con, options.ledger_path)
        # delivery overlaps preparation: its stage is the time the loop waited for it beyond preparing
        loop = time.perf_counter() - t
        stage["deliver"] = max(loop - (sum(stage.values()) - prepared_before), 0.0)
        report.match_quality = estimate_match_quality(keys for keys, n in key_sets.items() for _ in range(n))
    sent_values = np.concatenate(values_sent) if values_sent else np.zeros(0)
    if len(sent_values):
        report.value_quantiles = {
            "p10": float(np.quantile(sent_values, 0.1)), "p50": float(np.quantile(sent_values, 0.5)),
            "p90": float(np.quantile(sent_values, 0.9)), "max": float(sent_values.max()),
        }  # fmt: skip
        ref = spec.value_reference
        if ref and len(sent_values) >= PSI_MIN_EVENTS:
            report.psi = population_stability_index(ref["edges"], ref["shares"], sent_values)
    report.stage_seconds = {k: round(v, 3) for k, v in stage.items()}
    report.seconds = time.perf_counter() - t0
    if report.identity_dropped:  # counts only: which keys were unusable and why, never a value
        log_event(log, "activation.identifiers_dropped", run_id=run_id,
                  **{f"{k}.{r}": n for (k, r), n in sorted(report.identity_dropped.items())})  # fmt: skip
    _record_history(options.ledger_path, report, spec)
    log_event(log, "activation.daily_finished", run_id=run_id, sent=report.sent, failed=report.failed,
              skipped=sum(report.skipped.values()), seconds=round(report.seconds, 2))  # fmt: skip
    return report


def _record_history(ledger: Ledger | Path, report: DailyReport, spec: EventSpec, *, stopped=None) -> None:
    """The run's row in the ledger's run history (dry runs too, marked); a failure to write it is logged
    and never fails the run: the events' own rows are what delivery relies on."""
    record = record_from_report(report, expected_weekly=spec.expected.get("weekly_volume"), stopped=stopped)
    try:
        if isinstance(ledger, Ledger):
            record_run(ledger.con, record)
        else:
            with Ledger(ledger) as opened:
                record_run(opened.con, record)
    except (duckdb.Error, LedgerError) as exc:
        log_event(log, "activation.run_history_failed", logging.WARNING, run_id=report.run_id,
                  error=type(exc).__name__)  # fmt: skip
