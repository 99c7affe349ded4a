"""OpenAI messages -> the model's own chat template -> prompt tokens.

We render the Jinja chat template stored in the GGUF file exactly as llama-cpp-python's
``create_chat_completion`` does (same ``Jinja2ChatFormatter``, same BOS/EOS texts, same
tokenisation flags), but keep the token list in our hands: the engine then drives
``Llama.generate`` itself so that it can count prompt and completion tokens exactly, check a
stop flag after every token, and hold back partial stop sequences (the streaming path of
``create_chat_completion`` reports no usage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minitoolai.chat.schemas import Message, text_of
from minitoolai.engines.errors import EngineRejected, EngineUnavailable

#: OpenAI roles chat templates do not know, and what they mean to them
ROLE_ALIASES = {"developer": "system"}


def template_messages(messages: list[Message], model_id: str) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` dicts, the shape every chat template understands; image
    parts are refused (this engine sees text only)."""
    out: list[dict[str, str]] = []
    for message in messages:
        if message.images():
            raise EngineRejected(f"model {model_id!r} accepts text only, got a 'image_url' part")
        out.append(
            {"role": ROLE_ALIASES.get(message.role, message.role), "content": text_of(message)}
        )
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

    def render(self, messages: list[Message]) -> tuple[str, list[str], bool]:
        """Prompt text, template stop strings, and whether the text already holds BOS."""
        try:
            plain: Any = template_messages(messages, self._model_id)
            result = self._formatter(messages=plain)
        except EngineRejected:
            raise
        except Exception as exc:  # templates raise_exception() on e.g. bad role order
            raise EngineRejected(f"model {self._model_id!r} chat template: {exc}") from exc
        stop = result.stop if isinstance(result.stop, list) else [result.stop]
        return result.prompt, [s for s in stop if s], bool(result.added_special)

    def prepare(self, messages: list[Message]) -> Prompt:
        text, stops, added_special = self.render(messages)
        tokens = self._llama.tokenize(text.encode("utf-8"), add_bos=not added_special, special=True)
        return Prompt(tokens=list(tokens), stops=stops)
