"""The data contract's column groups for the ``users`` table, defined once (``../shared/DESIGN.md``).

- :data:`ATTRIBUTES` — optional model features (``country``, ``platform``, ``channel``);
- :data:`IDENTIFIER_KEYS` / :data:`IDENTIFIERS` — optional match keys, used only for matching, never as
  features; each column with the Conversions API ``user_data`` key it becomes;
- :data:`DELIVERY` — optional delivery columns (consent, Limited Data Use, URL, the acquisition event
  as it was sent to Meta for ``AppendValue``).

``country`` is both an attribute and a match key. Sources validate these columns, the daily job and the
designer select them, identity maps them to ``user_data`` keys.
"""

from __future__ import annotations

from collections.abc import Mapping

ATTRIBUTES: tuple[str, ...] = ("country", "platform", "channel")
#: Identifier column → ``user_data`` key (``country`` too: it is a match key as well as an attribute).
IDENTIFIER_KEYS: Mapping[str, str] = {
    "email": "em",
    "phone": "ph",
    "first_name": "fn",
    "last_name": "ln",
    "city": "ct",
    "state": "st",
    "zip": "zp",
    "date_of_birth": "db",
    "gender": "ge",
    "external_id": "external_id",
    "fbc": "fbc",
    "fbp": "fbp",
    "client_ip_address": "client_ip_address",
    "client_user_agent": "client_user_agent",
    "madid": "madid",
    "anon_id": "anon_id",
    "country": "country",
}
#: The identifier columns proper (``country`` is an attribute that also matches).
IDENTIFIERS: tuple[str, ...] = tuple(c for c in IDENTIFIER_KEYS if c not in ATTRIBUTES)
#: The columns hashed into ``user_data``: the identifiers and ``country``.
MATCH_COLUMNS: tuple[str, ...] = tuple(IDENTIFIER_KEYS)
DELIVERY: tuple[str, ...] = (
    "consent", "ldu", "event_source_url", "conversion_event_name", "conversion_event_id",
    "conversion_order_id", "conversion_sent_at",
)  # fmt: skip
