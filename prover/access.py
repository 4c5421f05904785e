"""Optional API keys for ``/infer``, each with its own rate limit (a token bucket).

No key configured: the API is open, as before. Keys configured: a request names its key in
``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``); a missing or unknown key is 401, a
key over its limit is 429 with ``Retry-After`` (whole seconds until one request fits again).
Keys are held as their SHA-256 digests, so a lookup compares digests, never the secrets.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spotcheck.errors import ConfigError


class KeyLimit(BaseModel):
    """One key's limit: ``rate`` requests per second on average, ``burst`` at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


@dataclass(frozen=True)
class Decision:
    """The answer for one request: allowed (status 200), or the HTTP status, reason and
    ``Retry-After`` seconds to refuse it with."""

    status: int = 200
    reason: str = ""
    retry_after_s: int | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; a request takes one."""

    def __init__(self, limit: KeyLimit, now: float) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self.tokens = self.burst
        self.at = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until one is there."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class AccessControl:
    """The keys and their buckets (thread-safe: the API serves from a thread pool)."""

    def __init__(
        self, keys: Mapping[str, KeyLimit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = {_digest(k): v for k, v in keys.items()}
        self._clock = clock
        self._buckets: dict[bytes, TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """No key configured: every request is let through."""
        return not self._limits

    def check(self, headers: Mapping[str, str]) -> Decision:
        if self.open:
            return Decision()
        key = _key_of(headers)
        if key is None:
            return Decision(401, "an API key is required (Authorization: Bearer <key>)")
        digest = _digest(key)
        limit = self._limits.get(digest)
        if limit is None:
            return Decision(401, "unknown API key")
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(digest)
            if bucket is None:
                bucket = self._buckets[digest] = TokenBucket(limit, now)
            wait = bucket.take(now)
        if wait > 0:
            return Decision(
                429,
                f"rate limit of this API key exceeded ({limit.rate:g} requests/s, "
                f"burst {limit.burst})",
                max(1, math.ceil(wait)),
            )
        return Decision()


def _key_of(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() or None if key is not None else None


def load_keys(inline: Mapping[str, KeyLimit], path: Path | None) -> dict[str, KeyLimit]:
    """The configured keys: the settings' table plus a keys file (TOML, ``[keys]`` table of
    key -> ``{rate, burst}``), if given. ConfigError (one line) for an unreadable file."""
    keys = dict(inline)
    if path is None:
        return keys
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read API keys file {path}: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"API keys file {path} is not TOML: {err}") from err
    table = data.get("keys", {})
    if not isinstance(table, dict):
        raise ConfigError(f"API keys file {path}: `keys` must be a table of key -> limit")
    for key, value in table.items():
        try:
            keys[str(key)] = KeyLimit.model_validate(value)
        except ValidationError as err:
            first = err.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "value"
            raise ConfigError(
                f"API keys file {path}: key ending {str(key)[-4:]!r}: {where}: {first['msg']}"
            ) from err
    return keys
