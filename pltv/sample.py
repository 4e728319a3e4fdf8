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
- identifiers with realistic coverage and mess (case and whitespace in emails, national and international
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

_S = np.dtypes.StringDType()
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

FIRST_NAMES = np.array(
    [
        "James",
        "Mary",
        "John",
        "Patricia",
        "Robert",
        "Jennifer",
        "Michael",
        "Linda",
        "David",
        "Emma",
        "Olivia",
        "Noah",
        "Liam",
        "Sophia",
        "Mary-Jane",
        "José",
        "Zoë",
        "Anne Marie",
        "Léa",
        "Lukas",
        "Mia",
        "Lucas",
        "Chloé",
        "Jack",
        "Isla",
        "Ava",
        "Mateo",
        "Sofia",
        "Ethan",
        "Amelia",
    ],
    dtype=_S,
)
LAST_NAMES = np.array(
    [
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "O'Brien",
        "Müller",
        "van der Berg",
        "Martin",
        "Dubois",
        "Taylor",
        "Wilson",
        "Anderson",
        "Thomas",
        "Moore",
        "Schmidt",
        "Silva",
        "Santos",
        "Lee",
        "Walker",
        "Young",
        "King",
        "Wright",
        "Scott",
        "Green",
        "Baker",
        "Hall",
    ],
    dtype=_S,
)
DOMAINS = np.array(
    [
        "gmail.com",
        "yahoo.com",
        "outlook.com",
        "icloud.com",
        "hotmail.co.uk",
        "gmx.de",
        "orange.fr",
        "example.org",
    ],
    dtype=_S,
)
# per country: (cities, state names, state codes)
US_STATES = [
    ("New York", "New York", "NY"),
    ("San Francisco", "California", "CA"),
    ("Los Angeles", "California", "CA"),
    ("Austin", "Texas", "TX"),
    ("Chicago", "Illinois", "IL"),
    ("Seattle", "Washington", "WA"),
    ("Miami", "Florida", "FL"),
    ("Boston", "Massachusetts", "MA"),
    ("O'Fallon", "Missouri", "MO"),
    ("Denver", "Colorado", "CO"),
]
US_AREA = np.array([212, 415, 213, 512, 312, 206, 305, 617, 636, 303])  # matches US_STATES order
OTHER_CITIES = {
    "GB": ["London", "Manchester", "Leeds", "Bristol"],
    "CA": ["Toronto", "Vancouver", "Montréal", "Calgary"],
    "DE": ["Berlin", "München", "Hamburg", "Köln"],
    "FR": ["Paris", "Lyon", "Marseille", "Toulouse"],
    "AU": ["Sydney", "Melbourne", "Brisbane", "Perth"],
    "BR": ["São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba"],
}
OTHER_STATES = {
    "CA": [("Ontario", "ON"), ("British Columbia", "BC"), ("Quebec", "QC"), ("Alberta", "AB")],
    "AU": [
        ("New South Wales", "NSW"),
        ("Victoria", "VIC"),
        ("Queensland", "QLD"),
        ("Western Australia", "WA"),
    ],
    "DE": [("Berlin", "BE"), ("Bayern", "BY"), ("Hamburg", "HH"), ("Nordrhein-Westfalen", "NW")],
}
USER_AGENTS = np.array(
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
    ],
    dtype=_S,
)
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


def _s(values: np.ndarray) -> np.ndarray:
    """Integers/strings -> numpy StringDType (vectorized string arithmetic)."""
    return np.asarray(values).astype(_S)


def _zpad(values: np.ndarray, width: int) -> np.ndarray:
    return np.strings.zfill(_s(values), width)


def _cat(*parts: np.ndarray | str) -> np.ndarray:
    out = parts[0] if isinstance(parts[0], np.ndarray) else np.asarray(parts[0], dtype=_S)
    for part in parts[1:]:
        out = np.strings.add(out, part if isinstance(part, np.ndarray) else np.asarray(part, dtype=_S))
    return out


def _pick(index: np.ndarray, options: list[np.ndarray]) -> np.ndarray:
    """``options[index[i]][i]`` per row (``np.choose`` crashes on StringDType arrays)."""
    out = options[0]
    for k, option in enumerate(options[1:], start=1):
        out = np.where(index == k, option, out)
    return out


def _hex(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """``n`` random lowercase hex strings of ``width`` characters."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    codes = digits[rng.integers(0, 16, size=(n, width))]
    return np.ascontiguousarray(codes).view(f"S{width}").ravel().astype(_S)


def _masked(values: np.ndarray, keep: np.ndarray) -> pd.Series:
    """A pandas string Series with ``None`` where ``keep`` is False."""
    series = pd.Series(values.astype(object), dtype="string")
    return series.where(keep, None)


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


def _phones(rng: np.random.Generator, country: np.ndarray, state_idx: np.ndarray) -> np.ndarray:
    n = len(country)
    fmt = rng.integers(0, 4, n)
    sub7 = rng.integers(2_000_000, 9_999_999, n)
    sub7 = np.where(sub7 // 10_000 % 1000 == 555, sub7 + 1_000_000, sub7)  # avoid 555 exchanges
    ex, line = _s(sub7 // 10_000), _zpad(sub7 % 10_000, 4)
    area = _s(US_AREA[state_idx])
    nanp = [
        _cat("(", area, ") ", ex, "-", line),
        _cat(area, "-", ex, "-", line),
        _cat("+1 ", area, " ", ex, " ", line),
        _cat(area, ".", ex, ".", line),
    ]
    out = _pick(fmt, nanp)
    mob6 = _zpad(rng.integers(0, 1_000_000, n), 6)
    mob8 = _zpad(rng.integers(0, 100_000_000, n), 8)
    by_country = {
        "GB": [
            _cat("07", _s(rng.integers(400, 999, n)), " ", mob6),
            _cat("+44 7", _s(rng.integers(400, 999, n)), " ", mob6),
        ],
        "CA": [_cat("(416) ", ex, "-", line), _cat("+1 604 ", ex, " ", line)],
        "DE": [_cat("0151 ", mob8), _cat("+49 151 ", mob8)],
        "FR": [
            _cat(
                "06 ",
                np.strings.slice(mob8, 0, 2),
                " ",
                np.strings.slice(mob8, 2, 4),
                " ",
                np.strings.slice(mob8, 4, 6),
                " ",
                np.strings.slice(mob8, 6, 8),
            ),
            _cat("+33 6", mob8),
        ],
        "AU": [
            _cat(
                "04",
                np.strings.slice(mob8, 0, 2),
                " ",
                np.strings.slice(mob8, 2, 5),
                " ",
                np.strings.slice(mob8, 5, 8),
            ),
            _cat("+61 4", mob8),
        ],
        "BR": [
            _cat("(11) 9", np.strings.slice(mob8, 0, 4), "-", np.strings.slice(mob8, 4, 8)),
            _cat("+55 11 9", mob8),
        ],
    }
    for code, formats in by_country.items():
        mask = country == code
        out = np.where(mask, _pick(fmt % len(formats), formats), out)
    return out


def _identifiers(rng: np.random.Generator, users: pd.DataFrame) -> pd.DataFrame:
    n = len(users)
    country = users["country"].to_numpy().astype(str)
    platform = users["platform"].to_numpy().astype(str)
    channel = users["channel"].to_numpy().astype(str)
    web = platform == "web"
    is_us = country == "US"
    signup_ms = (users["signup_at"].astype("int64").to_numpy() // 1000).astype(np.int64)  # us -> ms

    fn = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    ln = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    local = _cat(
        np.strings.lower(np.strings.replace(fn, " ", "")),
        ".",
        np.strings.lower(np.strings.replace(np.strings.replace(ln, " ", ""), "'", "")),
        _s(rng.integers(1, 9999, n)),
    )
    email = _cat(local, "@", DOMAINS[rng.integers(0, len(DOMAINS), n)])
    style = rng.random(n)
    email = np.where(style < 0.12, np.strings.upper(email), email)
    email = np.where((style >= 0.12) & (style < 0.22), _cat("  ", email, " "), email)
    email = np.where(
        (style >= 0.22) & (style < 0.30),
        _cat(np.strings.capitalize(local), "@", DOMAINS[rng.integers(0, 4, n)]),
        email,
    )
    fn_out = np.where(rng.random(n) < 0.15, np.strings.upper(fn), fn)
    ln_out = np.where(rng.random(n) < 0.10, _cat(" ", np.strings.lower(ln)), ln)

    state_idx = rng.integers(0, len(US_STATES), n)
    us_city = np.array([c for c, _, _ in US_STATES], dtype=_S)[state_idx]
    us_state = np.where(
        rng.random(n) < 0.45,
        np.array([s for _, s, _ in US_STATES], dtype=_S)[state_idx],
        np.array([c for _, _, c in US_STATES], dtype=_S)[state_idx],
    )
    us_zip5 = _zpad(
        np.array([10001, 94103, 90012, 73301, 60601, 98101, 33101, 2108, 63366, 80202])[state_idx]
        + rng.integers(0, 40, n),
        5,
    )
    us_zip = np.where(rng.random(n) < 0.3, _cat(us_zip5, "-", _zpad(rng.integers(0, 9999, n), 4)), us_zip5)
    city, state, zp = us_city, us_state, us_zip
    k4 = rng.integers(0, 4, n)
    for code, cities in OTHER_CITIES.items():
        mask = country == code
        city = np.where(mask, np.array(cities, dtype=_S)[k4], city)
        if code in OTHER_STATES:
            names = np.array([a for a, _ in OTHER_STATES[code]], dtype=_S)[k4]
            codes = np.array([b for _, b in OTHER_STATES[code]], dtype=_S)[k4]
            state = np.where(mask, np.where(rng.random(n) < 0.5, names, codes), state)
        else:
            state = np.where(mask, np.asarray("", dtype=_S), state)
        postal = {
            "GB": _cat("M1 ", _s(rng.integers(1, 9, n)), "AE"),
            "CA": _cat("M5V ", _s(rng.integers(1, 9, n)), "T", _s(rng.integers(1, 9, n))),
            "DE": _zpad(rng.integers(10115, 99998, n), 5),
            "FR": _zpad(rng.integers(75001, 75020, n), 5),
            "AU": _s(rng.integers(2000, 6999, n)),
            "BR": _cat(_zpad(rng.integers(1000, 9999, n), 5), "-000"),
        }
        zp = np.where(mask, postal[code], zp)
    has_state = np.strings.str_len(state) > 0

    dob_days = rng.integers(-18_000, 11_000, n)  # ~1920 .. 2000 (days since epoch)
    dob = pd.to_datetime(dob_days, unit="D")
    iso, us_fmt, compact = (np.asarray(dob.strftime(f), dtype=_S) for f in ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"))
    dob_fmt = rng.integers(0, 3, n)
    dob_txt = np.where(dob_fmt == 0, iso, np.where((dob_fmt == 1) & is_us, us_fmt, compact))
    gender = np.array(["F", "M", "female", "Male", "f", "m", "Female"], dtype=_S)[rng.integers(0, 7, n)]

    clicked = rng.random(n) < np.where(channel == "paid_social", 0.7, 0.08)
    fbclid = _cat("IwAR", _hex(rng, n, 10), np.strings.upper(_hex(rng, n, 6)))
    fbc = _cat("fb.1.", _s(signup_ms - rng.integers(0, 600_000, n)), ".", fbclid)
    fbp = _cat(
        "fb.1.",
        _s(signup_ms - rng.integers(0, 30 * DAY_S * 1000, n)),
        ".",
        _s(rng.integers(0, 2_147_483_647, n)),
    )
    octets = rng.integers(1, 255, size=(n, 4))
    ipv4 = _cat(
        _s(octets[:, 0] % 200 + 23), ".", _s(octets[:, 1]), ".", _s(octets[:, 2]), ".", _s(octets[:, 3])
    )
    ipv6 = _cat("2a03:2880:", _hex(rng, n, 4), ":", _hex(rng, n, 4), "::", _hex(rng, n, 3))
    ip = np.where(rng.random(n) < 0.4, ipv6, ipv4)
    ua = USER_AGENTS[np.where(web, rng.integers(0, 2, n), np.where(platform == "ios", 2, 3))]
    madid_raw = _cat(
        _hex(rng, n, 8),
        "-",
        _hex(rng, n, 4),
        "-4",
        _hex(rng, n, 3),
        "-a",
        _hex(rng, n, 3),
        "-",
        _hex(rng, n, 12),
    )
    madid = np.where(platform == "ios", np.strings.upper(madid_raw), madid_raw)
    sent_at = users["signup_at"] + pd.to_timedelta(rng.integers(1, 120, n), unit="s")
    conv_id = _cat("reg-", _hex(rng, n, 16))

    r = rng.random
    out = pd.DataFrame(
        {
            "email": _masked(email, r(n) < 0.9),
            "phone": _masked(_phones(rng, country, state_idx), r(n) < 0.62),
            "first_name": _masked(fn_out, r(n) < 0.78),
            "last_name": _masked(ln_out, r(n) < 0.74),
            "city": _masked(city, r(n) < 0.58),
            "state": _masked(state, (r(n) < 0.55) & has_state),
            "zip": _masked(zp, r(n) < 0.52),
            "date_of_birth": _masked(dob_txt, r(n) < 0.33),
            "gender": _masked(gender, r(n) < 0.40),
            "external_id": _masked(_cat("crm-", _hex(rng, n, 12)), r(n) < 0.97),
            "fbc": _masked(fbc, clicked & web),
            "fbp": _masked(fbp, web & (r(n) < 0.75)),
            "client_ip_address": _masked(ip, r(n) < np.where(web, 0.88, 0.55)),
            "client_user_agent": _masked(ua, r(n) < np.where(web, 0.92, 0.5)),
            "madid": _masked(madid, ~web & (r(n) < 0.55)),
            "anon_id": _masked(_cat("XZ", _hex(rng, n, 30)), ~web & (r(n) < 0.7)),
            "consent": r(n) >= 0.03,
            "ldu": is_us & (r(n) < 0.04),
            "event_source_url": _masked(np.full(n, "https://shop.example.com/signup", dtype=_S), web),
            "conversion_event_name": _masked(np.full(n, "CompleteRegistration", dtype=_S), web),
            "conversion_event_id": _masked(conv_id, web & (r(n) < 0.95)),
            "conversion_order_id": pd.Series([None] * n, dtype="string"),
            "conversion_sent_at": sent_at.where(web),
        }
    )
    return out


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
    user_id = _cat("u", _zpad(rng.permutation(n) + 1, 8))
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
            "transaction_id": _cat("t", _zpad(np.arange(m) + 1, 10)).astype(object),
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
    users = pd.concat([users, _identifiers(rng, users)], axis=1)
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
