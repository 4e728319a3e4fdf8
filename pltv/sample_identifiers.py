"""The sample's users' identifiers, with realistic coverage and mess, as Meta's ``user_data`` keys see them.

Emails with case and whitespace, national and international phone formats, state names vs codes, ZIP+4,
several date-of-birth formats, missing values; ``consent`` false for a few percent, ``ldu`` for some US
users, ``fbc``/``fbp`` in Meta's formats, IPs and user agents, and the acquisition (conversion) event ids
that Meta's delayed pLTV (``AppendValue``) refers to. Vectorized string arithmetic on numpy's StringDType;
:func:`identifiers` is called by :func:`pltv.sample.generate_tables` with its random stream.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_S = np.dtypes.StringDType()

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


def _s(values: np.ndarray) -> np.ndarray:
    """Integers/strings -> numpy StringDType (vectorized string arithmetic)."""
    return np.asarray(values).astype(_S)


def zero_pad(values: np.ndarray, width: int) -> np.ndarray:
    return np.strings.zfill(_s(values), width)


def concat(*parts: np.ndarray | str) -> np.ndarray:
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


def _phones(rng: np.random.Generator, country: np.ndarray, state_idx: np.ndarray) -> np.ndarray:
    n = len(country)
    fmt = rng.integers(0, 4, n)
    sub7 = rng.integers(2_000_000, 9_999_999, n)
    sub7 = np.where(sub7 // 10_000 % 1000 == 555, sub7 + 1_000_000, sub7)  # avoid 555 exchanges
    ex, line = _s(sub7 // 10_000), zero_pad(sub7 % 10_000, 4)
    area = _s(US_AREA[state_idx])
    nanp = [
        concat("(", area, ") ", ex, "-", line),
        concat(area, "-", ex, "-", line),
        concat("+1 ", area, " ", ex, " ", line),
        concat(area, ".", ex, ".", line),
    ]
    out = _pick(fmt, nanp)
    mob6 = zero_pad(rng.integers(0, 1_000_000, n), 6)
    mob8 = zero_pad(rng.integers(0, 100_000_000, n), 8)
    by_country = {
        "GB": [
            concat("07", _s(rng.integers(400, 999, n)), " ", mob6),
            concat("+44 7", _s(rng.integers(400, 999, n)), " ", mob6),
        ],
        "CA": [concat("(416) ", ex, "-", line), concat("+1 604 ", ex, " ", line)],
        "DE": [concat("0151 ", mob8), concat("+49 151 ", mob8)],
        "FR": [
            concat(
                "06 ",
                np.strings.slice(mob8, 0, 2),
                " ",
                np.strings.slice(mob8, 2, 4),
                " ",
                np.strings.slice(mob8, 4, 6),
                " ",
                np.strings.slice(mob8, 6, 8),
            ),
            concat("+33 6", mob8),
        ],
        "AU": [
            concat(
                "04",
                np.strings.slice(mob8, 0, 2),
                " ",
                np.strings.slice(mob8, 2, 5),
                " ",
                np.strings.slice(mob8, 5, 8),
            ),
            concat("+61 4", mob8),
        ],
        "BR": [
            concat("(11) 9", np.strings.slice(mob8, 0, 4), "-", np.strings.slice(mob8, 4, 8)),
            concat("+55 11 9", mob8),
        ],
    }
    for code, formats in by_country.items():
        mask = country == code
        out = np.where(mask, _pick(fmt % len(formats), formats), out)
    return out


def identifiers(rng: np.random.Generator, users: pd.DataFrame) -> pd.DataFrame:
    n = len(users)
    country = users["country"].to_numpy().astype(str)
    platform = users["platform"].to_numpy().astype(str)
    channel = users["channel"].to_numpy().astype(str)
    web = platform == "web"
    is_us = country == "US"
    signup_ms = (users["signup_at"].astype("int64").to_numpy() // 1000).astype(np.int64)  # us -> ms

    fn = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    ln = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    local = concat(
        np.strings.lower(np.strings.replace(fn, " ", "")),
        ".",
        np.strings.lower(np.strings.replace(np.strings.replace(ln, " ", ""), "'", "")),
        _s(rng.integers(1, 9999, n)),
    )
    email = concat(local, "@", DOMAINS[rng.integers(0, len(DOMAINS), n)])
    style = rng.random(n)
    email = np.where(style < 0.12, np.strings.upper(email), email)
    email = np.where((style >= 0.12) & (style < 0.22), concat("  ", email, " "), email)
    email = np.where(
        (style >= 0.22) & (style < 0.30),
        concat(np.strings.capitalize(local), "@", DOMAINS[rng.integers(0, 4, n)]),
        email,
    )
    fn_out = np.where(rng.random(n) < 0.15, np.strings.upper(fn), fn)
    ln_out = np.where(rng.random(n) < 0.10, concat(" ", np.strings.lower(ln)), ln)

    state_idx = rng.integers(0, len(US_STATES), n)
    us_city = np.array([c for c, _, _ in US_STATES], dtype=_S)[state_idx]
    us_state = np.where(
        rng.random(n) < 0.45,
        np.array([s for _, s, _ in US_STATES], dtype=_S)[state_idx],
        np.array([c for _, _, c in US_STATES], dtype=_S)[state_idx],
    )
    us_zip5 = zero_pad(
        np.array([10001, 94103, 90012, 73301, 60601, 98101, 33101, 2108, 63366, 80202])[state_idx]
        + rng.integers(0, 40, n),
        5,
    )
    us_zip = np.where(
        rng.random(n) < 0.3, concat(us_zip5, "-", zero_pad(rng.integers(0, 9999, n), 4)), us_zip5
    )
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
            "GB": concat("M1 ", _s(rng.integers(1, 9, n)), "AE"),
            "CA": concat("M5V ", _s(rng.integers(1, 9, n)), "T", _s(rng.integers(1, 9, n))),
            "DE": zero_pad(rng.integers(10115, 99998, n), 5),
            "FR": zero_pad(rng.integers(75001, 75020, n), 5),
            "AU": _s(rng.integers(2000, 6999, n)),
            "BR": concat(zero_pad(rng.integers(1000, 9999, n), 5), "-000"),
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
    fbclid = concat("IwAR", _hex(rng, n, 10), np.strings.upper(_hex(rng, n, 6)))
    fbc = concat("fb.1.", _s(signup_ms - rng.integers(0, 600_000, n)), ".", fbclid)
    fbp = concat(
        "fb.1.",
        _s(signup_ms - rng.integers(0, 30 * 86_400_000, n)),
        ".",
        _s(rng.integers(0, 2_147_483_647, n)),
    )
    octets = rng.integers(1, 255, size=(n, 4))
    ipv4 = concat(
        _s(octets[:, 0] % 200 + 23), ".", _s(octets[:, 1]), ".", _s(octets[:, 2]), ".", _s(octets[:, 3])
    )
    ipv6 = concat("2a03:2880:", _hex(rng, n, 4), ":", _hex(rng, n, 4), "::", _hex(rng, n, 3))
    ip = np.where(rng.random(n) < 0.4, ipv6, ipv4)
    ua = USER_AGENTS[np.where(web, rng.integers(0, 2, n), np.where(platform == "ios", 2, 3))]
    madid_raw = concat(
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
    conv_id = concat("reg-", _hex(rng, n, 16))

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
            "external_id": _masked(concat("crm-", _hex(rng, n, 12)), r(n) < 0.97),
            "fbc": _masked(fbc, clicked & web),
            "fbp": _masked(fbp, web & (r(n) < 0.75)),
            "client_ip_address": _masked(ip, r(n) < np.where(web, 0.88, 0.55)),
            "client_user_agent": _masked(ua, r(n) < np.where(web, 0.92, 0.5)),
            "madid": _masked(madid, ~web & (r(n) < 0.55)),
            "anon_id": _masked(concat("XZ", _hex(rng, n, 30)), ~web & (r(n) < 0.7)),
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
