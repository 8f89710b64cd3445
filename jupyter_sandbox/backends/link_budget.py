"""What one sandbox's link may cost the server, for KernelRelay: token buckets over the bytes,
messages and launcher events it sends per second (bursts of a few seconds), and the time the relay
spent not reading the link (which the relay's timeouts do not count)."""

from __future__ import annotations


class LinkBudget:
    """Three token buckets, refilled with time and charged for what the relay took from the link."""

    BURST = 4.0  # seconds of each rate that may be spent at once

    def __init__(self, bytes_per_second: float, messages_per_second: float, events_per_second: float):
        self._rates = (float(bytes_per_second), float(messages_per_second), float(events_per_second))
        self._tokens = [self.BURST * rate for rate in self._rates]
        self._refilled = 0.0
        self._charged = 0  # bytes of the link charged so far
        self.throttled = False  # the relay is not reading the link: over budget, or parsing in turns
        self._throttled_since = 0.0
        self._throttled_total = 0.0  # seconds spent not reading, for the timeouts

    def refill(self, now: float) -> None:
        if self._refilled:
            for i, rate in enumerate(self._rates):
                self._tokens[i] = min(self.BURST * rate, self._tokens[i] + (now - self._refilled) * rate)
        self._refilled = now

    def charge(self, consumed: int, skipped: int, messages: int) -> None:
        """``consumed`` bytes taken from the link so far (``skipped`` of them not kept), and messages now."""
        # a skipped byte is neither copied nor parsed: it costs the budget a sixteenth
        charged = consumed - skipped + skipped // 16
        self._tokens[0] -= charged - self._charged
        self._charged = charged
        self._tokens[1] -= messages

    def charge_event(self) -> None:
        self._tokens[2] -= 1

    def wait(self) -> float:
        """Seconds until every bucket is back above zero (0: within budget)."""
        return max(
            (-tokens / rate if rate > 0 else 0.0) for tokens, rate in zip(self._tokens, self._rates, strict=True)
        )

    def throttled_for(self, now: float) -> float:
        """Seconds the link was not read, in all."""
        return self._throttled_total + (now - self._throttled_since if self.throttled else 0.0)

    def set_throttled(self, on: bool, now: float) -> bool:
        """Note that reading stopped or resumed; whether that changed anything."""
        if on == self.throttled:
            return False
        self.throttled = on
        if on:
            self._throttled_since = now
        else:
            self._throttled_total += now - self._throttled_since
        return True
