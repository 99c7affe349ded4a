"""The output items a Responses answer is made of, from chat's events: every item that is
added is done once, in order, and the whole answer is what the stream said."""

from __future__ import annotations

from typing import Any

from minitoolai.engines.base import ToolCallPart
from minitoolai.responses.render import Output


def _events(output: Output, steps: list[Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for step in steps:
        if isinstance(step, str):
            events += output.text(step)
        elif isinstance(step, ToolCallPart):
            events += output.call(step)
        else:
            events += output.finish(step[0])
    return events


def test_text_then_calls_then_text_make_items_in_order_each_closed_once() -> None:
    output = Output("abc")
    events = _events(
        output,
        [
            "Let me ",
            "look.",
            ToolCallPart(0, "call_1", "get_weather", '{"ci'),
            ToolCallPart(1, "call_2", "get_time", "{}"),
            ToolCallPart(0, None, None, 'ty": "Rome"}'),
            "Done.",
            ("stop",),
        ],
    )
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert added == [0, 1, 2, 3] and sorted(done) == [0, 1, 2, 3] and len(done) == 4
    # the message closes when the first call opens; interleaved call pieces go to their item
    assert done.index(0) < added.index(1)
    whole = output.whole()
    assert [i["type"] for i in whole] == ["message", "function_call", "function_call", "message"]
    assert whole[0]["content"][0]["text"] == "Let me look."
    assert whole[1]["arguments"] == '{"city": "Rome"}' and whole[1]["call_id"] == "call_1"
    assert whole[3]["content"][0]["text"] == "Done."
    assert all(i["status"] == "completed" for i in whole)
    finished = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["item_id"], e["arguments"]) for e in finished] == [
        (whole[1]["id"], '{"city": "Rome"}'),
        (whole[2]["id"], "{}"),
    ]
    assert output.said() == "Let me look.Done."
    assert [c["id"] for c in output.chat_calls()] == ["call_1", "call_2"]


def test_an_answer_cut_at_the_limit_is_incomplete() -> None:
    output = Output("x")
    _events(output, ["a", "b", ("length",)])
    assert output.status == "incomplete"
    assert output.whole()[0]["status"] == "incomplete"


def test_a_call_without_an_id_gets_one() -> None:
    output = Output("x")
    _events(output, [ToolCallPart(0, None, "f", "{}"), ("tool_calls",)])
    [call] = output.whole()
    assert call["call_id"] and call["call_id"] == output.chat_calls()[0]["id"]
