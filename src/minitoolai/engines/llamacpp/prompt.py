"""OpenAI messages -> the model's own chat template -> prompt tokens.

We render the Jinja chat template stored in the GGUF file exactly as llama-cpp-python's
``create_chat_completion`` does (same ``Jinja2ChatFormatter``, same BOS/EOS texts, same
tokenisation flags), but keep the token list in our hands: the engine then drives
``Llama.generate`` itself so that it can count prompt and completion tokens exactly, check a
stop flag after every token, and hold back partial stop sequences (the streaming path of
``create_chat_completion`` reports no usage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from minitoolai.chat.schemas import Message, text_of
from minitoolai.engines.errors import EngineRejected, EngineUnavailable
from minitoolai.engines.llamacpp.toolcalls import TOOL_CALL_MARKER

#: OpenAI roles chat templates do not know, and what they mean to them
ROLE_ALIASES = {"developer": "system"}
#: JSON in the prompt without spaces: fewer tokens, and the form the grammar lets the model write
COMPACT = (",", ":")


def tools_section(functions: list[dict[str, Any]]) -> str:
    """The system prompt's description of the offered functions and how to call one (the
    format ``toolcalls`` enforces)."""
    lines = [
        json.dumps(
            {k: function[k] for k in ("name", "description", "parameters") if k in function},
            ensure_ascii=False,
            separators=COMPACT,
        )
        for function in functions
    ]
    return (
        "You can call these functions:\n<tools>\n" + "\n".join(lines) + "\n</tools>\n"
        f"To call one, answer with {TOOL_CALL_MARKER} followed by a JSON object "
        '{"name": <the function name>, "arguments": <its arguments>} and nothing else. '
        "A function's result comes back in <tool_response>."
    )


def _field(item: Any, name: str) -> Any:
    """``item[name]`` for a plain dict or a pydantic model (history fields arrive as either)."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _calls_of(message: Message) -> list[tuple[str, str, str]]:
    """``(id, name, arguments)`` of an assistant message's ``tool_calls`` (or the legacy
    ``function_call``)."""
    extra = message.model_extra or {}
    calls = getattr(message, "tool_calls", None) or extra.get("tool_calls") or []
    legacy = getattr(message, "function_call", None) or extra.get("function_call")
    out: list[tuple[str, str, str]] = []
    for call in [*calls, *([{"function": legacy}] if legacy else [])]:
        function = _field(call, "function")
        custom = _field(call, "custom")
        if custom is not None:  # as the model wrote it: the input as a function's argument
            arguments = json.dumps({"input": str(_field(custom, "input") or "")})
            out.append((str(_field(call, "id") or ""), str(_field(custom, "name")), arguments))
        elif function is not None:
            out.append(
                (
                    str(_field(call, "id") or ""),
                    str(_field(function, "name") or ""),
                    str(_field(function, "arguments") or "{}"),
                )
            )
    return out


def _call_text(name: str, arguments: str) -> str:
    try:
        parsed: Any = json.loads(arguments)
    except ValueError:
        parsed = arguments
    call = {"name": name, "arguments": parsed}
    return TOOL_CALL_MARKER + json.dumps(call, ensure_ascii=False, separators=COMPACT)


def template_messages(
    messages: list[Message], model_id: str, functions: list[dict[str, Any]] | None = None
) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` dicts, the shape every chat template understands; image
    parts are refused (this engine sees text only).

    Tool calls become the text the model writes for them, tool results a user turn in
    ``<tool_response>`` (consecutive results share one turn, so templates that insist on
    alternating roles accept them), and ``functions`` are described in the system turn.
    """
    out: list[dict[str, str]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name
    after_result = False  # the last turn holds tool results
    for message in messages:
        if message.images():
            raise EngineRejected(f"model {model_id!r} accepts text only, got a 'image_url' part")
        text = text_of(message)
        role = ROLE_ALIASES.get(message.role, message.role)
        if role in ("tool", "function"):
            name = message.name or names.get(message.tool_call_id or "", "")
            result = f'<tool_response name="{name}">\n{text}\n</tool_response>'
            if after_result:
                out[-1]["content"] += "\n" + result
            else:
                out.append({"role": "user", "content": result})
            after_result = True
            continue
        if role == "assistant":
            calls = _calls_of(message)
            names.update((call_id, name) for call_id, name, _ in calls)
            text = "\n".join(
                part for part in [text, *(_call_text(n, a) for _, n, a in calls)] if part
            )
        out.append({"role": role, "content": text})
        after_result = False
    if functions:
        section = tools_section(functions)
        if out and out[0]["role"] == "system":
            out[0]["content"] += "\n\n" + section
        else:
            out.insert(0, {"role": "system", "content": section})
    return out


@dataclass(slots=True)
class Prompt:
    tokens: list[int]
    #: strings the template says end the answer (e.g. its EOS text), besides EOG token ids
    stops: list[str]


class ChatPrompter:
    """Renders and tokenises prompts for one loaded model."""

    def __init__(self, llama: Any, model_id: str, template_override: str | None = None) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = template_override or llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise EngineUnavailable(
                f"model {model_id!r}: the GGUF file has no chat template "
                "(tokenizer.chat_template); set `chat_template` in this model's config"
            )
        self._llama = llama
        self._model_id = model_id
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(llama.token_eos()),
            bos_token=self._token_text(llama.token_bos()),
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self._llama.detokenize([token], special=True)).decode("utf-8", "replace")

    def render(
        self, messages: list[Message], functions: list[dict[str, Any]] | None = None
    ) -> tuple[str, list[str], bool]:
        """Prompt text, template stop strings, and whether the text already holds BOS."""
        try:
            plain: Any = template_messages(messages, self._model_id, functions)
            result = self._formatter(messages=plain)
        except EngineRejected:
            raise
        except Exception as exc:  # templates raise_exception() on e.g. bad role order
            raise EngineRejected(f"model {self._model_id!r} chat template: {exc}") from exc
        stop = result.stop if isinstance(result.stop, list) else [result.stop]
        return result.prompt, [s for s in stop if s], bool(result.added_special)

    def prepare(
        self, messages: list[Message], functions: list[dict[str, Any]] | None = None
    ) -> Prompt:
        text, stops, added_special = self.render(messages, functions)
        tokens = self._llama.tokenize(text.encode("utf-8"), add_bos=not added_special, special=True)
        return Prompt(tokens=list(tokens), stops=stops)
