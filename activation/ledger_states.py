"""The ledger's state machine: the states and reasons a row can hold, the places they make, and the one
table of transitions every ledger write follows (:data:`TRANSITIONS`).

A row's *state* is what Meta knows (pending, sent, failed, skipped); its *place* (:data:`PLACES`) adds the
reason where the reason decides what a later run may do with it (a failed row whose retries ran out is
sent again; one Meta refused is not). :mod:`activation.ledger` turns each transition into the SQL
predicate of its UPDATE with :func:`may_leave`.
"""

from __future__ import annotations

from collections.abc import Mapping

PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"
STATES = (PENDING, SENT, FAILED, SKIPPED)
# reasons that name a kind of failed row (skips carry the builder's reason codes)
RETRYABLE = "retries_exhausted"  # failed only because retries ran out: a later run sends it again
REJECTED = "rejected"  # Meta refused the event itself: never re-sent (it would poison the batch again)
EXPIRED = "expired"  # owed, but too old for Meta before any run could send it
# may have reached Meta (a timeout, a reset after the body left, a dead run's pending) and Meta's dedup
# window from that moment has closed: a re-send would be counted twice, so it is never re-sent
UNCONFIRMED = "unconfirmed"
SUPERSEDED = "superseded"  # owed under an earlier spec, never delivered: the current spec sends the user
NOT_SENT = "not_sent"  # pending, but its batch never left (the run stopped first): owed, never delivered
TEMPORARY_SKIPS = ("in_future",)  # a later run may send these: the clock, not the user, was the reason

#: Where a row may be, finer than its state: each place a SQL predicate over the row (``{t}`` = table).
PLACES: Mapping[str, str] = {
    "pending": f"{{t}}.state = '{PENDING}'",
    "sent": f"{{t}}.state = '{SENT}'",
    "failed_retryable": f"{{t}}.state = '{FAILED}' AND {{t}}.reason IS NOT DISTINCT FROM '{RETRYABLE}'",
    "failed_for_good": f"{{t}}.state = '{FAILED}' AND {{t}}.reason IS DISTINCT FROM '{RETRYABLE}' "
    f"AND {{t}}.reason IS DISTINCT FROM '{UNCONFIRMED}'",
    "unconfirmed": f"{{t}}.state = '{FAILED}' AND {{t}}.reason = '{UNCONFIRMED}'",
    "skipped_for_clock": f"{{t}}.state = '{SKIPPED}' AND coalesce({{t}}.reason IN "
    f"({', '.join(repr(r) for r in TEMPORARY_SKIPS)}), false)",
    "skipped_for_good": f"{{t}}.state = '{SKIPPED}' AND NOT coalesce({{t}}.reason IN "
    f"({', '.join(repr(r) for r in TEMPORARY_SKIPS)}), false)",
}
#: Still owed to Meta: the next run sends these (while Meta's window is open) or expires them.
OWED = ("pending", "failed_retryable", "skipped_for_clock")
#: When a row first may have reached Meta: recorded on an outcome without a definitive answer, or when a
#: dead run's ``pending`` row (its ``updated_at`` is the moment it was claimed) is found by a later write.
MAY_HAVE_REACHED = (
    "coalesce({t}.maybe_delivered_at, "
    "CASE WHEN {t}.state = 'pending' AND {t}.reason IS NULL THEN {t}.updated_at END)"
)

#: The state machine: each transition, the places a known row may leave by it (a new event id always
#: may), and the state it enters. The ledger's writes are exactly these; a row in any other place is
#: left as it is. ``skip``: a row skipped for the same reason stays with the run that first skipped it.
TRANSITIONS: Mapping[str, tuple[tuple[str, ...], str]] = {
    "skip": (
        ("pending", "failed_retryable", "failed_for_good", "skipped_for_clock", "skipped_for_good"),
        SKIPPED,
    ),
    "claim": (("pending", "failed_retryable", "skipped_for_clock", "skipped_for_good"), PENDING),
    "outcome": (
        ("pending", "failed_retryable", "failed_for_good", "skipped_for_clock", "skipped_for_good"),
        f"{SENT}|{FAILED}",
    ),
    "expire": (OWED, FAILED),
    # may have reached Meta, its dedup window is closed: settled as unconfirmed, never re-sent
    "settle": (("pending", "failed_retryable", "skipped_for_clock", "skipped_for_good"), FAILED),
    # an earlier spec's row: unconfirmed if it may have reached Meta, else (when owed) superseded
    "supersede": ((*OWED, "skipped_for_good"), f"{FAILED}|{SKIPPED}"),
}


def may_leave(transition: str, table: str) -> str:
    """The SQL predicate: a row of ``table`` may take ``transition``."""
    places = TRANSITIONS[transition][0]
    others = [p for p in PLACES if p not in places]
    if len(others) < len(places):  # the places partition the rows: name the fewer (cheaper per row)
        return "(NOT coalesce(" + " OR ".join(f"({PLACES[p].format(t=table)})" for p in others) + ", false))"
    return "(" + " OR ".join(f"({PLACES[p].format(t=table)})" for p in places) + ")"


def place_of(state: str, reason: str | None) -> str:
    """The place (a key of :data:`PLACES`) of a row in ``state`` with ``reason`` (pure, for tests and callers)."""
    if state == FAILED:
        if reason == UNCONFIRMED:
            return "unconfirmed"
        return "failed_retryable" if reason == RETRYABLE else "failed_for_good"
    if state == SKIPPED:
        return "skipped_for_clock" if reason in TEMPORARY_SKIPS else "skipped_for_good"
    return state
