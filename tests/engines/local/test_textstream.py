"""The stop-sequence/UTF-8 hold-back logic, on hand-made token byte streams."""

from __future__ import annotations

from minitoolai.engines.llamacpp.textstream import StopScanner


def run(pieces: list[bytes], stops: list[str]) -> tuple[list[str], bool]:
    scanner = StopScanner(stops)
    out = [scanner.feed(p) for p in pieces]
    out.append(scanner.flush())
    return out, scanner.stopped


def test_text_without_stops_flows_through_at_once() -> None:
    out, stopped = run([b"Hello", b" world"], [])
    assert out == ["Hello", " world", ""]
    assert not stopped


def test_stop_split_across_tokens_never_leaks() -> None:
    out, stopped = run([b"one two #", b"#", b"# three"], ["###"])
    assert "".join(out) == "one two "
    assert stopped
    # the partial "#"s were held back, not sent and then retracted
    assert out[0] == "one two "


def test_held_back_prefix_is_released_when_it_turns_out_not_to_be_a_stop() -> None:
    out, stopped = run([b"a #", b"# b"], ["###"])
    assert out == ["a ", "## b", ""]
    assert not stopped


def test_earliest_of_several_stops_wins() -> None:
    out, stopped = run([b"x END y STOP z"], ["STOP", "END"])
    assert "".join(out) == "x "
    assert stopped


def test_multibyte_character_split_across_tokens() -> None:
    snowman = "☃".encode()
    out, _ = run([b"a", snowman[:1], snowman[1:], b"b"], [])
    assert out == ["a", "", "☃", "b", ""]


def test_trailing_partial_stop_is_sent_at_the_end() -> None:
    out, stopped = run([b"done #"], ["###"])
    assert out == ["done ", "#"]
    assert not stopped
