"""Identity: normalize and SHA-256 the ``user_data`` match keys exactly as Meta documents them.

Pure functions only. Two entry points:

- :func:`hash_identifiers` — columnar, for the daily job: a users DataFrame (data-contract identifier
  columns) in, a DataFrame of ``user_data``-ready columns (``em``, ``ph``, …, ``fbc``) out, plus an
  :class:`IdentityReport` counting what was kept and what was dropped, per key and reason. Each column is
  normalized over its *unique* values (phone, state and zip over unique ``(value, country)`` pairs),
  then hashed with ``hashlib`` once per unique normalized value.
- :func:`user_data_for` — the same rules for one user as a dict, for small callers and tests.

Rules (Meta's *Customer Information Parameters* page; where Meta's own SDK disagrees, the page wins,
see ``../shared/capi/normalization_vectors.json``):

- ``em`` trimmed + lowercased, must look like ``local@domain.tld``.
- ``ph`` parsed with Google's libphonenumber in the user's country (else ``default_region``) and written
  as E.164 digits *with* country code (``(650)555-1212`` → ``16505551212``); ``00`` is read as ``+``.
- ``fn``/``ln``/``ct`` lowercased, letters only (no punctuation, spaces or digits), accents kept (NFC).
- ``ge`` ``f``/``m`` from common spellings; ``db`` ``YYYYMMDD`` from common date forms (1900 up to the
  current year).
- ``st`` US state names → ANSI codes; outside the US (user's country known and not US) the name,
  lowercase without punctuation or spaces, as Meta documents.
- ``zp`` lowercase, no spaces or dashes; US ZIPs cut to their first 5 digits.
- ``country`` ISO alpha-2 lowercase from alpha-2, alpha-3, English names and ``UK``/``USA``/``U.S.``.
- ``external_id`` is **hashed** (Meta recommends it): trimmed and lowercased first, so the same ID
  hashes identically on every channel (the Pixel's automatic advanced matching lowercases too).
- ``client_ip_address`` (validated), ``client_user_agent``, ``fbc``, ``fbp`` (case kept: the fbclid is
  case-sensitive), ``madid`` and ``anon_id`` are never hashed, only trimmed.
- A 64-hex value of a hashed key is taken as already hashed and passed through (lowercased). MD5
  (32-hex) is not: CAPI documents SHA-256 only.

An invalid value drops that key for that user and is counted; it never raises out of the public
functions and never appears in any message or log.
"""

from __future__ import annotations

import hashlib
import ipaddress
import multiprocessing
import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pycountry

from activation.errors import InvalidIdentifier

HASHED_KEYS: tuple[str, ...] = (
    "em",
    "ph",
    "fn",
    "ln",
    "ge",
    "db",
    "ct",
    "st",
    "zp",
    "country",
    "external_id",
)
PLAIN_KEYS: tuple[str, ...] = ("client_ip_address", "client_user_agent", "fbc", "fbp", "madid", "anon_id")
USER_DATA_KEYS: tuple[str, ...] = HASHED_KEYS + PLAIN_KEYS

#: Data-contract column → ``user_data`` key.
COLUMN_KEYS: Mapping[str, str] = {
    "email": "em",
    "phone": "ph",
    "first_name": "fn",
    "last_name": "ln",
    "gender": "ge",
    "date_of_birth": "db",
    "city": "ct",
    "state": "st",
    "zip": "zp",
    "country": "country",
    "external_id": "external_id",
    "client_ip_address": "client_ip_address",
    "client_user_agent": "client_user_agent",
    "fbc": "fbc",
    "fbp": "fbp",
    "madid": "madid",
    "anon_id": "anon_id",
}

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_CLICK_ID_RE = re.compile(r"^fb\.\d+\.\d+\.\S+$")
_WS_RE = re.compile(r"\s+")
_PHONE_SEPARATORS_RE = re.compile(r"[\s\-().]")
_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
#: dotted-quad IPv4 already in canonical form (no leading zeros): ``ipaddress`` would return it as is
_CANONICAL_IPV4_RE = re.compile(rf"{_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}")
_HASHED_SET = frozenset(HASHED_KEYS)
_KEY_SET = frozenset(USER_DATA_KEYS)


def sha256_hex(normalized: str) -> str:
    """SHA-256 of a normalized value as lowercase hex; an empty value is a bug, never hashed."""
    if not normalized:
        raise InvalidIdentifier("?", "empty")
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def is_sha256(value: str) -> bool:
    """True for a 64-character lowercase hex string (an already-hashed match key)."""
    return bool(_SHA256_RE.fullmatch(value))  # fullmatch: "$" would also accept a trailing newline


# --------------------------------------------------------------------------------------------------------
# per-key normalizers: raw value in, normalized string out, InvalidIdentifier(key, reason) when unusable
# --------------------------------------------------------------------------------------------------------


def _text(key: str, raw: Any) -> str:
    if type(raw) is str:
        s = unicodedata.normalize("NFC", raw).strip()
        if not s:
            raise InvalidIdentifier(key, "empty")
        return s
    if raw is None or (isinstance(raw, float) and raw != raw):
        raise InvalidIdentifier(key, "missing")
    if isinstance(raw, datetime | date | pd.Timestamp):
        return raw.strftime("%Y%m%d")
    s = unicodedata.normalize("NFC", str(raw)).strip()
    if not s:
        raise InvalidIdentifier(key, "empty")
    return s


def _letters(s: str) -> str:
    """Lowercase letters (and combining marks) only: no punctuation, spaces, digits or symbols."""
    return "".join(ch for ch in s.lower() if unicodedata.category(ch)[0] in "LM")


def _norm_em(s: str) -> str:
    s = s.lower()
    if not _EMAIL_RE.match(s):
        raise InvalidIdentifier("em", "invalid_format")
    return s


def _parse_phone(s: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException:
        return None


try:  # libphonenumber's own internals, used only to skip a repeated check (see _is_valid_phone)
    from phonenumbers.phonemetadata import PhoneMetadata as _PhoneMetadata
    from phonenumbers.phonenumberutil import _number_type_helper
    from phonenumbers.re_util import re_compile as _pn_re_compile
except ImportError:  # pragma: no cover - another phonenumbers layout: the public call only
    _number_type_helper = None


def _is_valid_phone(num: phonenumbers.PhoneNumber) -> bool:
    """Exactly ``phonenumbers.is_valid_number(num)``, minus its repeated type check.

    For a calling code shared by several regions (``+1``, ``+44``, ``+61``…) ``is_valid_number``
    first finds the region by running the number-type check region after region, then runs the same
    check again for the region found. The first result is the answer, so it is used as is; the
    region loop mirrors ``_region_code_for_number_from_list``. A test compares both on sample numbers.
    """
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(num.country_code)
    if _number_type_helper is None or not regions or len(regions) == 1:
        return phonenumbers.is_valid_number(num)
    nsn = phonenumbers.national_significant_number(num)
    for region in regions:
        metadata = _PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if _pn_re_compile(metadata.leading_digits).match(nsn):
                return phonenumbers.is_valid_number_for_region(num, region)
        elif _number_type_helper(nsn, metadata) != phonenumbers.PhoneNumberType.UNKNOWN:
            return True  # is_valid_number_for_region(num, region) repeats this very check
    return False


def _norm_ph(s: str, region: str | None) -> str:
    s = s.strip()
    digits_start = _PHONE_SEPARATORS_RE.sub("", s)
    if digits_start.startswith("00"):
        s = "+" + digits_start[2:]
    elif digits_start.startswith("+"):
        s = digits_start
    reg = region.upper() if region and not s.startswith("+") else None
    if reg is None and not s.startswith("+"):
        s = "+" + digits_start  # no region to assume: the digits must start with the country code
    num = _parse_phone(s, reg)
    valid = num is not None and _is_valid_phone(num)
    if not valid and reg is not None and digits_start.isdigit():
        alt = _parse_phone("+" + digits_start, None)  # the digits may already carry a country code
        if alt is not None and _is_valid_phone(alt):
            num, valid = alt, True
    if num is None:
        raise InvalidIdentifier("ph", "unparseable")
    if not valid:
        raise InvalidIdentifier("ph", "invalid_number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)[1:]


def _norm_name(key: str) -> Callable[[str], str]:
    def norm(s: str) -> str:
        out = _letters(s)
        if not out:
            raise InvalidIdentifier(key, "no_letters")
        return out

    return norm


_GENDERS = {
    "f": "f",
    "female": "f",
    "woman": "f",
    "w": "f",
    "girl": "f",
    "fem": "f",
    "m": "m",
    "male": "m",
    "man": "m",
    "boy": "m",
    "h": "m",
}


def _norm_ge(s: str) -> str:
    out = _GENDERS.get(_letters(s))
    if out is None:
        raise InvalidIdentifier("ge", "unknown_value")
    return out


_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        zip(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
            [
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
            ],
            strict=True,
        )
    )
    for m in names
}
_MONTHS["sept"] = 9
_DATE_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), "ymd"),
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[t\s].*)?$"), "ymd"),
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$"), "mdy"),  # US slash form; d/m/y when the first > 12
    (re.compile(r"^(\d{1,2})[.\-](\d{1,2})[.\-](\d{4})$"), "dmy"),  # European dot/dash form
    (re.compile(r"^(\d{1,2})\s*([a-z]+)\.?,?\s*(\d{4})$"), "dMy"),
    (re.compile(r"^([a-z]+)\.?\s*(\d{1,2}),?\s*(\d{4})$"), "Mdy"),
)


def _norm_db(s: str) -> str:
    s = s.lower().strip()
    for pattern, order in _DATE_FORMS:
        m = pattern.match(s)
        if not m:
            continue
        a, b, c = m.groups()
        if order == "ymd":
            y, mo, d = int(a), int(b), int(c)
        elif order == "mdy":
            mo, d, y = int(a), int(b), int(c)
            if mo > 12 >= d:
                mo, d = d, mo
        elif order == "dmy":
            d, mo, y = int(a), int(b), int(c)
        elif order == "dMy":
            d, mo, y = int(a), _MONTHS.get(b, 0), int(c)
        else:
            mo, d, y = _MONTHS.get(a, 0), int(b), int(c)
        if not 1900 <= y <= date.today().year:  # Meta: 1900 up to the current year
            raise InvalidIdentifier("db", "year_out_of_range")
        try:
            return date(y, mo, d).strftime("%Y%m%d")
        except ValueError as exc:
            raise InvalidIdentifier("db", "invalid_date") from exc
    raise InvalidIdentifier("db", "unknown_format")


@lru_cache(maxsize=1)
def _country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for c in pycountry.countries:
        a2 = c.alpha_2.lower()
        index[c.alpha_3.lower()] = a2
        for attr in ("name", "official_name", "common_name"):
            name = getattr(c, attr, None)
            if name:
                index.setdefault(_letters(name), a2)
        index[a2] = a2
    index.update(
        {
            "uk": "gb",
            "usa": "us",
            "us": "us",
            "unitedstatesofamerica": "us",
            "america": "us",
            "greatbritain": "gb",
            "england": "gb",
            "scotland": "gb",
            "wales": "gb",
            "northernireland": "gb",
            "britain": "gb",
            "russia": "ru",
            "southkorea": "kr",
            "korea": "kr",
            "vietnam": "vn",
            "iran": "ir",
            "syria": "sy",
            "laos": "la",
            "bolivia": "bo",
            "venezuela": "ve",
            "tanzania": "tz",
            "moldova": "md",
            "czechia": "cz",
            "czechrepublic": "cz",
            "turkey": "tr",
            "holland": "nl",
        }
    )
    return index


def _norm_country(s: str) -> str:
    out = _country_index().get(_letters(s))
    if out is None:
        raise InvalidIdentifier("country", "unknown_country")
    return out


@lru_cache(maxsize=1)
def _us_states() -> dict[str, str]:
    states = {
        _letters(s.name): s.code.split("-")[1].lower() for s in pycountry.subdivisions.get(country_code="US")
    }
    states.update({"washingtondc": "dc", "dc": "dc"})
    return states


def _norm_st(s: str, country: str | None) -> str:
    cleaned = _letters(s)
    if not cleaned:
        raise InvalidIdentifier("st", "no_letters")
    if country in (None, "us"):
        return _us_states().get(cleaned, cleaned)
    return cleaned


_US_ZIP_RE = re.compile(r"^(\d{5})(\d{4})?$")


def _norm_zp(s: str, country: str | None) -> str:
    cleaned = "".join(ch for ch in s.lower() if ch.isalnum())
    if not cleaned:
        raise InvalidIdentifier("zp", "empty")
    if country in (None, "us"):
        if country == "us" and cleaned.isdigit() and 3 <= len(cleaned) < 5:
            cleaned = cleaned.zfill(5)  # a ZIP stored as a number lost its leading zeros
        m = _US_ZIP_RE.match(cleaned)
        if m:
            return m.group(1)
        if country == "us":
            raise InvalidIdentifier("zp", "invalid_us_zip")
    return cleaned


def _norm_external_id(s: str) -> str:
    return s.lower()


def _norm_ip(s: str) -> str:
    if _CANONICAL_IPV4_RE.fullmatch(s):
        return s
    try:
        return str(ipaddress.ip_address(s))
    except ValueError as exc:
        raise InvalidIdentifier("client_ip_address", "invalid_ip") from exc


def _norm_click_id(key: str) -> Callable[[str], str]:
    def norm(s: str) -> str:
        if not _CLICK_ID_RE.match(s):
            raise InvalidIdentifier(key, "invalid_format")
        return s  # never lowercase: the fbclid is case-sensitive

    return norm


def _keep(s: str) -> str:
    return s


_SIMPLE: Mapping[str, Callable[[str], str]] = {
    "em": _norm_em,
    "fn": _norm_name("fn"),
    "ln": _norm_name("ln"),
    "ct": _norm_name("ct"),
    "ge": _norm_ge,
    "db": _norm_db,
    "country": _norm_country,
    "external_id": _norm_external_id,
    "client_ip_address": _norm_ip,
    "client_user_agent": _keep,
    "fbc": _norm_click_id("fbc"),
    "fbp": _norm_click_id("fbp"),
    "madid": _keep,
    "anon_id": _keep,
}
_REGIONAL = {"ph", "st", "zp"}


def normalize(key: str, raw: Any, *, country: str | None = None, default_region: str | None = "US") -> str:
    """Normalize one raw value of ``user_data`` key ``key`` as Meta documents; raise InvalidIdentifier.

    ``country`` is the user's (already normalized, alpha-2 lowercase) country: it is the phone region,
    and decides the US rules of ``st``/``zp``. A 64-hex value of a hashed key is returned as is.
    """
    if key not in _KEY_SET:
        raise InvalidIdentifier(key, "unknown_key")
    return _normalize_text(key, _text(key, raw), country, default_region)


def _normalize_text(key: str, s: str, country: str | None, default_region: str | None) -> str:
    """:func:`normalize` after ``_text``: ``s`` is stripped, NFC and non-empty."""
    # only A-F lowercase into hex digits (checked over all code points), so a value that is not
    # 64 long never lowercases into a hash
    if key in _HASHED_SET and len(s) == 64 and is_sha256(s.lower()):
        return s.lower()
    region = country if isinstance(country, str) and len(country) == 2 else None
    if key == "ph":
        return _norm_ph(s, region or default_region)
    if key == "st":
        return _norm_st(s, region)
    if key == "zp":
        return _norm_zp(s, region)
    return _SIMPLE[key](s)


def hash_normalized(key: str, normalized: str) -> str:
    """The value sent for ``key``: SHA-256 of the normalized value for hashed keys, else the value."""
    if key not in HASHED_KEYS:
        return normalized
    return normalized if is_sha256(normalized) else sha256_hex(normalized)


# --------------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityReport:
    """What hashing kept and dropped: counts only, never values."""

    rows: int
    present: Mapping[str, int] = field(default_factory=dict)  # non-empty input values per key
    kept: Mapping[str, int] = field(default_factory=dict)  # usable values per key
    dropped: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (key, reason) -> count

    def coverage(self) -> dict[str, float]:
        """Share of rows with a usable value, per key."""
        return {k: (self.kept.get(k, 0) / self.rows if self.rows else 0.0) for k in USER_DATA_KEYS}

    def render(self) -> str:
        """A short text table: key, kept/rows, dropped by reason."""
        lines = [f"identity: rows={self.rows:,}"]
        for k in USER_DATA_KEYS:
            if not self.present.get(k):
                continue
            drops = ", ".join(f"{r}={n:,}" for (kk, r), n in sorted(self.dropped.items()) if kk == k)
            lines.append(
                f"  {k:<18} kept={self.kept.get(k, 0):>9,}  {('dropped: ' + drops) if drops else ''}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# columnar and per-row API
# --------------------------------------------------------------------------------------------------------


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _factorize(values: Any) -> tuple[np.ndarray, list[Any]]:
    """Integer codes per row (-1 for missing) and the unique values, in order of appearance."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), uniques.tolist()


#: One unique value's outcome: (normalized, value to send, reason dropped); all None: blank (missing).
_Prepared = tuple[str | None, str | None, str | None]


def _prepare_values(
    key: str, uniques: Sequence[Any], countries: Sequence[str | None] | None, default_region: str | None
) -> list[_Prepared]:
    """Normalize and hash each unique value of ``key`` (with its user's country for ``ph``/``st``/``zp``).

    Blank values (missing or only spaces) come back as ``(None, None, None)``; a value Meta would not
    accept as ``(None, None, reason)``. Hashing runs once per distinct *normalized* value.
    """
    hashed = key in _HASHED_SET
    out: list[_Prepared] = []
    digests: dict[str, str] = {}
    for j, u in enumerate(uniques):
        try:
            s = _text(key, u)
        except InvalidIdentifier:
            out.append((None, None, None))
            continue
        try:
            norm = _normalize_text(key, s, countries[j] if countries is not None else None, default_region)
        except InvalidIdentifier as exc:
            out.append((None, None, exc.reason))
            continue
        if not hashed or _SHA256_RE.fullmatch(norm):
            out.append((norm, norm, None))
        else:
            digest = digests.get(norm)
            if digest is None:
                digest = digests[norm] = sha256_hex(norm)
            out.append((norm, digest, None))
    return out


def _column_values(
    key: str,
    codes: np.ndarray,
    prepared: Sequence[_Prepared],
    present: dict[str, int],
    kept: dict[str, int],
    dropped: dict[tuple[str, str], int],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (normalized, sent) object arrays from the per-unique outcomes; counts per row, not unique.

    ``codes`` index ``prepared`` per row (-1: missing). Blank values count as missing.
    """
    n_u = len(prepared)
    normalized: list[str | None] = [p[0] for p in prepared]
    sent: list[str | None] = [p[1] for p in prepared]
    normalized.append(None)  # the extra slot serves code -1
    sent.append(None)
    rows = np.bincount(codes[codes >= 0], minlength=n_u) if n_u else np.zeros(0, dtype=np.int64)
    blank = np.fromiter((p == (None, None, None) for p in prepared), dtype=bool, count=n_u)
    present[key] = int(rows[~blank].sum())
    ok = np.fromiter((p[0] is not None for p in prepared), dtype=bool, count=n_u)
    kept[key] = int(rows[ok].sum())
    for j, p in enumerate(prepared):
        if p[2] is not None:
            dropped[(key, p[2])] = dropped.get((key, p[2]), 0) + int(rows[j])
    norm_arr = np.array(normalized, dtype=object)
    sent_arr = np.array(sent, dtype=object)
    return norm_arr[codes], sent_arr[codes]


#: Unique values (all columns but ``country``) from which normalization + hashing runs in forked worker
#: processes as well as in the caller. Below it a fork costs more than it saves.
PARALLEL_MIN_UNIQUES = 20_000
_TASK_SIZE = 2_000  # unique values per task: the caller takes the tasks no worker has started
_FORK_AVAILABLE = "fork" in multiprocessing.get_all_start_methods()


def _workers() -> int:
    """Worker processes: the other CPUs (the caller keeps one), at most 4; 0 without ``fork``."""
    if not _FORK_AVAILABLE:
        return 0  # spawned workers would re-import pandas & co: slower than the work they take
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cpus - 1, 4)


class _SharedWork:
    """Tasks of :func:`_prepare_values` run by worker processes and by the caller.

    Workers take tasks from the front (phones first: libphonenumber is most of the time, ~20 µs a
    number); :meth:`results` runs in the caller every task no worker has started, taken from the back,
    then waits for the rest. The split follows how busy each process is; a worker's GIL is its own, so
    its work does not compete with the caller's threads (e.g. a delivery in flight). The same function
    runs on the same input either way, so the result is the serial one.
    """

    def __init__(
        self,
        columns: list[tuple[str, list[Any], list[str | None] | None]],
        default_region: str | None,
        workers: int,
    ) -> None:
        self._tasks: list[tuple[str, list[Any], list[str | None] | None, str | None]] = []
        self._owner: list[str] = []
        for key, uniques, countries in columns:
            for i in range(0, len(uniques), _TASK_SIZE):
                part = countries[i : i + _TASK_SIZE] if countries is not None else None
                self._tasks.append((key, uniques[i : i + _TASK_SIZE], part, default_region))
                self._owner.append(key)
        # fork: workers start in milliseconds with the caller's modules (and phone metadata) loaded
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        self._futures: list[Future] = [self._pool.submit(_prepare_values, *t) for t in self._tasks]

    def results(self) -> dict[str, list[_Prepared]]:
        """Per key, the outcome of each unique value, in the order given."""
        done: dict[int, list[_Prepared]] = {}
        try:
            for i in range(len(self._futures) - 1, -1, -1):
                if not self._futures[i].cancel():
                    break
                done[i] = _prepare_values(*self._tasks[i])
            out: dict[str, list[_Prepared]] = {}
            for i, fut in enumerate(self._futures):
                out.setdefault(self._owner[i], []).extend(done[i] if i in done else fut.result())
            return out
        finally:
            self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def hash_identifiers(
    users: pd.DataFrame, *, default_region: str | None = "US", parallel: bool = True
) -> tuple[pd.DataFrame, IdentityReport]:
    """Normalize + hash every identifier column of ``users`` into ``user_data``-ready columns.

    Input columns are the data contract's (``email``, ``phone``, …; ``user_data`` key names are also
    accepted). The output has the input's index and one column per present key (``em``, ``ph``, …),
    holding the value to send (hash or plain) or ``None``. Never raises for a bad value.

    Each column is factorized once; every unique value (for ``ph``/``st``/``zp``: every unique
    (value, user's country) pair) is normalized and hashed once, then mapped back to the rows.
    With ``parallel`` (the default), at least :data:`PARALLEL_MIN_UNIQUES` unique values and more than
    one CPU, forked worker processes share that work with the caller; the result is the same as with
    ``parallel=False`` (tested).
    """
    columns: dict[str, pd.Series] = {}
    for col in users.columns:
        key = COLUMN_KEYS.get(col, col if col in USER_DATA_KEYS else None)
        if key is not None and key not in columns:
            columns[key] = users[col]
    present: dict[str, int] = {}
    kept: dict[str, int] = {}
    dropped: dict[tuple[str, str], int] = {}
    out: dict[str, np.ndarray] = {}
    n = len(users)
    country_codes = np.full(n, -1, dtype=np.int64)
    countries: list[str] = []
    if "country" in columns:  # first: it is the phone region and decides the US rules of st/zp
        codes, uniques = _factorize(columns["country"])
        prepared = _prepare_values("country", uniques, None, default_region)
        normalized, out["country"] = _column_values("country", codes, prepared, present, kept, dropped)
        country_codes, countries = _factorize(normalized)
    todo: list[tuple[str, np.ndarray, list[Any], list[str | None] | None]] = []
    for key in ("ph", *(k for k in USER_DATA_KEYS if k not in ("ph", "country"))):
        if key not in columns:
            continue
        codes, uniques = _factorize(columns[key])
        pair_country: list[str | None] | None = None
        if key in _REGIONAL:
            # one code per (value, country) pair: value code * (countries + 1) + country code + 1
            width = len(countries) + 1
            valid = codes >= 0
            pair_codes, pairs = _factorize(codes[valid] * width + country_codes[valid] + 1)
            codes = np.full(n, -1, dtype=np.int64)
            codes[valid] = pair_codes
            pair_country = [countries[p % width - 1] if p % width else None for p in pairs]
            uniques = [uniques[p // width] for p in pairs]
        todo.append((key, codes, uniques, pair_country))
    workers = _workers() if parallel else 0
    if workers and sum(len(t[2]) for t in todo) >= PARALLEL_MIN_UNIQUES:
        shared = _SharedWork([(k, u, c) for k, _, u, c in todo], default_region, workers)
        try:
            prepared_by_key = shared.results()
        finally:
            shared.close()
    else:
        prepared_by_key = {k: _prepare_values(k, u, c, default_region) for k, _, u, c in todo}
    for key, codes, _, _ in todo:
        prepared = prepared_by_key.get(key, [])
        _, out[key] = _column_values(key, codes, prepared, present, kept, dropped)
    keys = [k for k in USER_DATA_KEYS if k in out]
    frame = pd.DataFrame({k: pd.Series(out[k], index=users.index, dtype=object) for k in keys}, columns=keys)
    return frame, IdentityReport(rows=n, present=present, kept=kept, dropped=dropped)


def user_data_for(
    identifiers: Mapping[str, Any], *, default_region: str | None = "US"
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """One user's ``user_data`` dict (hashed where Meta requires) and the (key, reason) pairs dropped.

    ``identifiers`` uses data-contract column names or ``user_data`` key names; missing values are
    ignored, already-prepared output of :func:`hash_identifiers` (64-hex / plain values) passes through.
    """
    raw: dict[str, Any] = {}
    for col, v in identifiers.items():
        key = COLUMN_KEYS.get(col, col if col in USER_DATA_KEYS else None)
        if key is not None and not _is_missing(v) and str(v).strip():
            raw.setdefault(key, v)
    data: dict[str, str] = {}
    drops: list[tuple[str, str]] = []
    country: str | None = None
    if "country" in raw:
        try:
            country = normalize("country", raw["country"])
        except InvalidIdentifier as exc:
            drops.append(("country", exc.reason))
            del raw["country"]
    for key in USER_DATA_KEYS:
        if key not in raw:
            continue
        try:
            norm = (
                country
                if key == "country"
                else normalize(key, raw[key], country=country, default_region=default_region)
            )
        except InvalidIdentifier as exc:
            drops.append((key, exc.reason))
            continue
        data[key] = hash_normalized(key, norm)  # type: ignore[arg-type]
    return data, drops


def user_data_records(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Rows of :func:`hash_identifiers` output as ``user_data`` dicts without the missing keys."""
    cols = list(frame.columns)
    values = frame.to_numpy(dtype=object)
    return [{c: v for c, v in zip(cols, row, strict=True) if v is not None and v == v} for row in values]
