"""A client-side rate limit, shared by the threads of one connector.

Remote APIs answer 429 above a documented rate (LoyaltyLion 20/s, Ometria 8/s); staying under it
costs less than being told to back off. A token bucket lets a short burst through (up to
``burst`` calls) and then spaces calls at ``per_second``. It is thread-safe, so a push sink's
worker threads share one budget.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Blocks ``acquire`` until one more call fits under ``per_second``."""

    def __init__(self, per_second: float, *, burst: int = 1) -> None:
        """``per_second`` <= 0 means no limit (a test or an API without one)."""
        self.per_second = per_second
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a slot; return the seconds waited (for progress and tests)."""
        if self.per_second <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_second)
            self._updated = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.per_second
        if wait:
            time.sleep(wait)
        return wait
