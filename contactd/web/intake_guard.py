"""What keeps the public intake endpoint from being abused: a rate limit per source address and
HMAC-SHA256 signatures with a timestamp and a replay window. In memory: one daemon serves the
panel (as for sign-in throttling)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from contactd.auth.errors import TooManyAttempts
from contactd.errors import ContactdError

SIGNATURE_HEADER: Final = "X-Contactd-Signature"
MAX_KEYS: Final = 100_000
_SIGNATURE_RE: Final = re.compile(r"t=(\d{1,12}),v1=([0-9a-f]{64})")


class RateLimited(TooManyAttempts):
    code = "rate_limited"


class BadSignature(ContactdError):
    """Missing, malformed, stale, replayed or wrong signature (the code says which)."""

    code = "bad_signature"


class RateLimiter:
    """At most `limit` requests per key within a sliding window of `window_s` seconds."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= self.window_s:
            hits.popleft()
        return hits

    def hit(self, key: str) -> None:
        """Count one request; RateLimited (with the seconds to wait) when over the limit."""
        now = self._clock()
        if len(self._hits) >= MAX_KEYS and key not in self._hits:
            # Many addresses must not grow memory without bound: drop the expired ones.
            for old in list(self._hits):
                if not self._recent(old, now):
                    del self._hits[old]
        hits = self._recent(key, now)
        if len(hits) >= self.limit:
            wait = int(self.window_s - (now - hits[0])) + 1
            raise RateLimited("too many submissions from this address; try again later",
                              retry_after_s=wait)
        hits.append(now)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a website sends: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
    `<t>.` followed by the raw body."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class SignatureCheck:
    """Verifies signed submissions; a signature is accepted once within the window."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, float] = {}  # signature -> when it leaves the window

    def verify(self, secret: str, header: str | None, body: bytes) -> None:
        if not header:
            raise BadSignature(f"this form needs a signed submission ({SIGNATURE_HEADER})",
                               code="signature_required")
        found = _SIGNATURE_RE.fullmatch(header.strip())
        if found is None:
            raise BadSignature(f"{SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex>",
                               code="signature_malformed")
        timestamp, given = int(found.group(1)), found.group(2)
        now = self._clock()
        if abs(now - timestamp) > self.window_s:
            raise BadSignature("signature timestamp is outside the accepted window",
                               code="signature_expired")
        expected = sign(secret, body, timestamp).rpartition("v1=")[2]
        if not hmac.compare_digest(given, expected):
            raise BadSignature("signature does not match the body", code="bad_signature")
        self._forget_expired(now)
        if given in self._seen:
            raise BadSignature("this signed submission was received before",
                               code="signature_replayed")
        self._seen[given] = timestamp + self.window_s

    def _forget_expired(self, now: float) -> None:
        if len(self._seen) >= MAX_KEYS // 10:
            for sig, until in list(self._seen.items()):
                if until < now:
                    del self._seen[sig]
