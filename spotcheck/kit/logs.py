"""Logging for the services: the ids a line is about travel as structured fields.

A service logs ``log.warning("DISPUTE OPENED", extra={"job_id": 7, "node": "0x..", "tx":
"0x.."})``; :func:`configure_logging` installs one handler on the root logger that prints those
fields after the message, ``key=value`` for people (the default), or one JSON object per line
(``json=True``) for log collectors. A field that only lived in ``extra=`` used to be lost by a
formatter that prints the message alone; here every non-standard attribute of the record is
printed.
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from typing import Any, TextIO

from spotcheck.kit.quiet import demote_chatter

#: Attributes every LogRecord has (not fields a caller passed in ``extra=``).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record`` (what the caller passed in ``extra=``), in order."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _text(value: Any) -> str:
    value = _plain(value)
    text = str(value)
    if text == "" or any(c.isspace() or c in '="' for c in text):
        return jsonlib.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value key=value`` (values with spaces quoted)."""

    def __init__(self, fmt: str = _HUMAN_FORMAT) -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        fields = fields_of(record)
        if not fields:
            return line
        return line + " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the fields, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            out.setdefault(key, _plain(value))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return jsonlib.dumps(out)


class _KitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (found again and replaced on a re-call)."""


def configure_logging(
    json: bool = False, level: int | str = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) with its fields: key=value, or JSON lines.

    Replaces the root logger's console handlers (a second call reconfigures, it does not
    duplicate lines). Ape logs through its own handler; its records do not also propagate here."""
    handler = _KitHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _KitHandler) or type(old) is logging.StreamHandler:  # basicConfig's
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("ape").propagate = False
    demote_chatter()  # third-party lines that are not events (kit/quiet.py): DEBUG
    return handler
