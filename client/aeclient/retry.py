"""When to try a request again: on 429, 502, 503 and 504 (honouring Retry-After) and on connection errors,
with exponential backoff and a cap; never on another 4xx, which would fail the same way again."""

from __future__ import annotations

import random
from dataclasses import dataclass

from aeclient.errors import ConnectionFailed
from aeclient.wire import Reply, parse_retry_after


@dataclass(frozen=True)
class Retry:
    attempts: int = 5  # tries in all, the first included; 1: never retry
    backoff: float = 0.2  # seconds before the first retry when the service names no Retry-After; doubled each time
    max_wait: float = 10.0  # the longest wait before one retry, Retry-After included
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})  # 429: overload, as DESIGN allows

    def wait(self, attempt: int, reply: Reply | None) -> float | None:
        """Seconds to wait before trying again after `attempt` (1 for the first try) got `reply` (None: no reply,
        the connection failed); None: do not try again (the reply is final, or the attempts are spent).

        Retry-After is honoured, plus a jitter of up to `backoff` so that clients told the same second
        do not all come back at once; without it the backoff is exponential, with jitter.
        """
        if (reply is not None and reply.status not in self.statuses) or attempt >= self.attempts:
            return None
        after = parse_retry_after(reply.headers.get("retry-after")) if reply is not None else None
        if after is not None:
            return min(self.max_wait, after + random.uniform(0, self.backoff))
        return min(self.max_wait, self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))


class Tries:
    """The attempts at one request: after each outcome, the seconds to wait before the next, or None when the reply
    is final (`reply`). A connection error with no attempts left raises ConnectionFailed."""

    def __init__(self, retry: Retry, what: str) -> None:
        self.retry, self.what = retry, what
        self.attempts = 0
        self._reply: Reply | None = None

    def wait_after(self, outcome: Reply | Exception) -> float | None:
        self.attempts += 1
        if isinstance(outcome, Reply):
            wait = self.retry.wait(self.attempts, outcome)
            self._reply = outcome if wait is None else None
            return wait
        wait = self.retry.wait(self.attempts, None)
        if wait is None:
            raise ConnectionFailed(f"{self.what}: {outcome!r}, {self.attempts} attempts", self.attempts) from outcome
        return wait

    @property
    def reply(self) -> Reply:
        assert self._reply is not None, "no final reply yet"
        return self._reply
