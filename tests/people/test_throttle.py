"""Failed log-ins per (email, address) in a sliding window."""

from __future__ import annotations

from minitoolai.people.throttle import LoginThrottle


def test_failures_throttle_that_email_from_that_address_until_the_window_passes() -> None:
    now = [1000.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("A@x.io", "1.2.3.4") is None
        throttle.failed("A@x.io", "1.2.3.4")
    assert throttle.retry_after("a@x.io", "1.2.3.4") == 61
    assert throttle.retry_after("a@x.io", "5.6.7.8") is None  # another address
    assert throttle.retry_after("b@x.io", "1.2.3.4") is None  # another email
    now[0] += 30
    assert throttle.retry_after("a@x.io", "1.2.3.4") == 31
    now[0] += 31
    assert throttle.retry_after("a@x.io", "1.2.3.4") is None


def test_a_success_forgets_the_failures() -> None:
    throttle = LoginThrottle(max_failures=2)
    throttle.failed("a@x.io", "ip")
    throttle.succeeded("a@x.io", "ip")
    throttle.failed("a@x.io", "ip")
    assert throttle.retry_after("a@x.io", "ip") is None


def test_the_table_is_bounded() -> None:
    throttle = LoginThrottle(max_failures=1, max_keys=10)
    for i in range(100):
        throttle.failed(f"{i}@x.io", "ip")
    assert len(throttle._failures) == 10
