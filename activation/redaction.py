"""Logs as data, and the redaction filter that keeps identifiers and secrets out of them.

``log_event(logger, "activation.batch_sent", batch=17, events=1000, status=200)`` writes
``activation.batch_sent batch=17 events=1000 status=200`` and attaches the fields to the record
(``record.event``, ``record.fields``) for structured handlers.

:class:`RedactionFilter` (install it on handlers or loggers) rewrites every record's message and
exception text: configured secret values (token, app secret, proofs), any 64-hex (a SHA-256 identifier,
an appsecret_proof) or 32-hex string, email-like strings, ``+``-prefixed phone numbers and
``access_token=``/``appsecret_proof=`` pairs become ``[REDACTED]``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"
_PATTERNS = (
    re.compile(r"(?i)\b(access_token|appsecret_proof|app_secret|token)(\"?\s*[=:]\s*\"?)[^\s\"&,;}]+"),
    re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{64}(?![0-9A-Za-z])"),
    re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32}(?![0-9A-Za-z])"),
    re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[A-Za-z]{2,}"),
    re.compile(r"\+\d[\d\s().-]{7,}\d"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets and anything identifier-like replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    for pattern in _PATTERNS[1:]:
        text = pattern.sub(REDACTED, text)
    return text


class RedactionFilter(logging.Filter):
    """A logging filter that redacts each record's message and exception text in place."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` as data: ``event key=value …``, fields also attached to the record."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join([event, *(f"{k}={v}" for k, v in fields.items())])
    logger.log(level, text, extra={"event": event, "fields": fields})


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record comes."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: int | str = logging.WARNING, *, secrets: Iterable[str] = ()) -> logging.Handler:
    """Send the toolkit's log events (loggers ``activation`` and ``pltv``) to stderr at ``level``, through a
    :class:`RedactionFilter` holding ``secrets``. Returns the handler; calling it again replaces the handler
    it installed before. A logger's own level is only ever lowered (to let ``level`` through)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RedactionFilter(secrets))
    handler.setLevel(level)
    handler.set_name("pltv-toolkit")
    for name in ("activation", "pltv"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "pltv-toolkit"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > handler.level:
            logger.setLevel(handler.level)
    return handler
