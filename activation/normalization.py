"""Normalization: one raw identifier value in, the value Meta matches on out (then SHA-256 where Meta hashes).

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
- ``client_ip_address`` (validated), ``client_user_agent`` (at most ``MAX_USER_AGENT_CHARS``), ``fbc``,
  ``fbp`` (case kept: the fbclid is case-sensitive), ``madid`` and ``anon_id`` are never hashed, only trimmed.
- A value holding a control or invisible format character (NUL, escapes, zero-width, bidi overrides) is
  dropped for its key, as is an email holding an emoji or another symbol.
- A 64-hex value of a hashed key is taken as already hashed and passed through (lowercased). MD5
  (32-hex) is not: CAPI documents SHA-256 only.

An invalid value raises :class:`~activation.errors.InvalidIdentifier` (key and reason, never the value)
from :func:`normalize`; :func:`prepare_values` turns that into a counted drop. Pure functions only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import pandas as pd
import phonenumbers
import pycountry

from activation.errors import InvalidIdentifier
from activation.meta import HASHED_KEYS, MAX_USER_AGENT_CHARS, USER_DATA_KEYS, is_sha256

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_CLICK_ID_RE = re.compile(r"^fb\.\d+\.\d+\.\S+$")
_WS_RE = re.compile(r"\s+")
_PHONE_SEPARATORS_RE = re.compile(r"[\s\-().]")
_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
#: dotted-quad IPv4 already in canonical form (no leading zeros): ``ipaddress`` would return it as is
_CANONICAL_IPV4_RE = re.compile(rf"{_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}")
# control and invisible format characters (NUL, escapes, zero-width, bidi overrides, BOM, lone surrogates):
# no identifier holds one, so a value with one is corrupt or hostile, never hashed or sent
_CONTROL_RE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
)
_HASHED_SET = frozenset(HASHED_KEYS)
_KEY_SET = frozenset(USER_DATA_KEYS)


def sha256_hex(normalized: str) -> str:
    """SHA-256 of a normalized value as lowercase hex; an empty value is a bug, never hashed."""
    if not normalized:
        raise InvalidIdentifier("?", "empty")
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


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
    if not s.isascii() and any(unicodedata.category(c)[0] not in "LMN" for c in s if not c.isascii()):
        raise InvalidIdentifier("em", "invalid_characters")  # an emoji or symbol: no mailbox is named so
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


def _norm_user_agent(s: str) -> str:
    if len(s) > MAX_USER_AGENT_CHARS:
        raise InvalidIdentifier("client_user_agent", "too_long")
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
    "client_user_agent": _norm_user_agent,
    "fbc": _norm_click_id("fbc"),
    "fbp": _norm_click_id("fbp"),
    "madid": _keep,
    "anon_id": _keep,
}
REGIONAL = {"ph", "st", "zp"}


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
    if _CONTROL_RE.search(s):
        raise InvalidIdentifier(key, "control_characters")
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


#: One unique value's outcome: (normalized, value to send, reason dropped); all None: blank (missing).
Prepared = tuple[str | None, str | None, str | None]


def prepare_values(
    key: str, uniques: Sequence[Any], countries: Sequence[str | None] | None, default_region: str | None
) -> list[Prepared]:
    """Normalize and hash each unique value of ``key`` (with its user's country for ``ph``/``st``/``zp``).

    Blank values (missing or only spaces) come back as ``(None, None, None)``; a value Meta would not
    accept as ``(None, None, reason)``. Hashing runs once per distinct *normalized* value.
    """
    hashed = key in _HASHED_SET
    out: list[Prepared] = []
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
        if not hashed or is_sha256(norm):
            out.append((norm, norm, None))
        else:
            digest = digests.get(norm)
            if digest is None:
                digest = digests[norm] = sha256_hex(norm)
            out.append((norm, digest, None))
    return out
