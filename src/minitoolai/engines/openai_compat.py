"""An upstream that speaks OpenAI's chat completions protocol, streamed.

OpenAI, Azure-style base URLs, vLLM, llama.cpp's server, Ollama and another MiniToolAI all
qualify. Streams always ask for usage (``include_usage``), so billing reads the provider's own
counts and a client disconnect can close the upstream at once; a client that wants one answer
gets one non-streamed call (``complete``), whose answer always carries its usage.

A deployment with ``responses = true`` also speaks OpenAI's Responses API (``respond``, the
``ResponsesEngine`` contract): the gateway's pass-through posts the client's body to its
``/responses`` and relays the events, under the same failure rules and usage checks.

Failures are translated here, once: connect errors, timeouts, 429 and 5xx before the first
chunk are ``EngineUnavailable`` (the router tries another deployment); other 4xx are
``EngineRejected``; anything after the first chunk is a plain ``EngineError`` (logged here, with
the deployment's name). The upstream's key is sent in a header and never logged or echoed: what
an upstream says in an error is passed through ``minitoolai.redact`` before it goes into an
exception (an upstream may echo the ``Authorization`` header it was sent).

Nothing an upstream sends is believed unchecked:

- **Shape.** An event or answer of an unexpected shape (not JSON, not an object, ``choices``
  not a list of objects, a ``delta``, ``message``, ``content``, ``role`` or ``finish_reason`` of
  the wrong type) is translated like a broken connection: ``EngineUnavailable`` before the
  first chunk (a non-streamed answer always is: failover, then 502, nothing charged),
  ``EngineError`` after it (the client's stream ends with an error event, billed for what was
  delivered). Never an unhandled exception, so never a 500.
- **Usage** is read in one place, :func:`parse_usage`. ``prompt_tokens`` and
  ``completion_tokens`` must both be plain integers in ``0..MAX_TOKENS`` (2**53, the largest
  integer any JSON reader holds exactly; the ledger stores 64-bit counts). Usage that is not an
  object, lacks a count, or has one that is negative, a float, a boolean, a string or larger
  than that is treated as **absent**, and logged: the pipeline then bills its own count of what
  was delivered, marked estimated. Absent rather than an error, because the answer itself
  arrived intact: the client keeps it and pays our count, not the upstream's claim. A
  well-formed count that is merely large is kept; the ledger never charges more than the hold.
  Bad detail counts (``cached_tokens``, ``reasoning_tokens``) are read as 0.
- **Silence.** ``read_timeout_s`` is the longest a streaming upstream may say nothing: before
  its response, and between any two reads after it (a slow drip is fine, a stall is not). A
  non-streamed answer is generated before its first byte, so it may take up to ``timeout_s``
  to begin, then ``read_timeout_s`` between reads.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import orjson

from minitoolai.chat.schemas import Message
from minitoolai.chat.tokens import count_text
from minitoolai.engines.base import (
    ChatChunk,
    ChatEngine,
    ChatParams,
    ResponsesEvent,
    ToolCallPart,
    Usage,
    one_by_one,
)
from minitoolai.engines.errors import EngineError, EngineRejected, EngineUnavailable
from minitoolai.infra.http import (
    Client,
    ConnectFailed,
    HTTPError,
    Response,
    Silent,
    Target,
    TimedOut,
    target,
)
from minitoolai.observability import REQUEST_ID
from minitoolai.redact import redact, register, secret_header_values
from minitoolai.settings import ProviderConfig

log = logging.getLogger("minitoolai.upstream")

E = TypeVar("E")

#: The largest token count believed from an upstream (see the module docstring).
MAX_TOKENS = 2**53


def chat_body(params: ChatParams, model: str, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        # the validated messages, dumped once, as the client sent them (no nulls added)
        "messages": [m.model_dump(exclude_none=True) for m in params.messages],
        "stream": stream,
        "max_completion_tokens": params.max_tokens,
        "temperature": params.temperature,
    }
    optional = {
        "top_p": params.top_p,
        "stop": params.stop,
        "seed": params.seed,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "response_format": params.response_format,
        "user": params.user,
        "tools": params.tools,  # the client's own JSON, unchanged
        "tool_choice": params.tool_choice,
        "parallel_tool_calls": params.parallel_tool_calls,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if params.n != 1:
        body["n"] = params.n
    body.update(params.forwarded)
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def request_headers(provider: ProviderConfig) -> dict[str, str]:
    """What every call to a provider carries; its key goes in a header and nowhere else."""
    headers = {"Content-Type": "application/json", **provider.headers}
    key = provider.resolved_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _count(value: object) -> int | None:
    # bool is an int subclass; floats, strings and None are not counts
    if type(value) is not int or not 0 <= value <= MAX_TOKENS:
        return None
    return value


def _detail(details: object, name: str) -> int:
    if not isinstance(details, dict):
        return 0
    return _count(details.get(name)) or 0


def parse_usage(data: object) -> Usage | None:
    """An upstream's ``usage``, or None when it is absent or not believable (see above)."""
    if not isinstance(data, dict):
        return None
    prompt = _count(data.get("prompt_tokens"))
    completion = _count(data.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(_detail(data.get("prompt_tokens_details"), "cached_tokens"), prompt),
        reasoning_tokens=min(
            _detail(data.get("completion_tokens_details"), "reasoning_tokens"), completion
        ),
    )


class _Parser(Generic[E]):
    """A stream's events, read off its lines: a network read's lines at a time, as a list (an
    event costs no generator of its own); ``ended`` once the event that ends it was read.
    A line that is malformed or reports an error stops the reading: the events before it are
    returned, and ``failed`` holds what to raise once they are delivered. Each protocol's
    ``_read`` appends the events of its lines."""

    __slots__ = ("_engine", "ended", "failed")

    def __init__(self, engine: OpenAICompatEngine) -> None:
        self._engine = engine
        self.ended = False
        self.failed: Exception | None = None

    def feed(self, lines: list[bytes]) -> list[E]:
        events: list[E] = []
        try:
            self._read(lines, events)
        except (_Malformed, EngineError) as exc:
            self.failed = exc
        return events

    def _read(self, lines: list[bytes], events: list[E]) -> None:
        raise NotImplementedError


def _first_apart(lines: list[bytes]) -> tuple[list[bytes], ...]:
    """A read's lines with its first ``data:`` line apart from the rest, when there is a rest:
    a stream's first event goes out before the other events of its read are parsed (an
    upstream that sends many at once would otherwise hold the time to first token)."""
    for i, line in enumerate(lines):
        if line.startswith(b"data:"):
            if i + 1 < len(lines):
                return lines[: i + 1], lines[i + 1 :]
            break
    return (lines,)


def _error_text(raw: bytes) -> str:
    """What an upstream's error body says, redacted, then shortened."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str):
        return redact(message)[:500]
    return redact(raw[: 64 * 1024].decode("utf-8", "replace"))[:200]


#: A stream's last event ([DONE]) often comes before the end of its HTTP body (the chunked
#: terminator, a packet later): closing then would drop the connection, and the next call
#: would pay a new connection (and TLS handshake). The end is awaited in the background this
#: long, and for this many bytes at most, then the connection goes back to the pool (or is
#: closed, if the body did not end).
DRAIN_S = 1.0
DRAIN_BYTES = 64 * 1024

#: The most an upstream may send as one answer, and as one stream line (one event): past these
#: it is broken, not buffered further (a Responses stream's last event carries the whole
#: response, so a line may be large; nothing real comes near either).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
MAX_EVENT_BYTES = 8 * 1024 * 1024


class ProviderEndpoint:
    """One endpoint of one provider: where to send, with which headers, for how long.

    Shared by the chat and speech engines; ``repr`` never shows the provider's key.
    """

    path = ""

    def __init__(
        self,
        provider_name: str,
        provider: ProviderConfig,
        upstream_model: str,
        session: Client,
    ) -> None:
        self.provider_name = provider_name
        self.model_id = upstream_model
        self.label = f"{provider_name}:{upstream_model}"  # as the routing table names it
        self._session = session
        self._target = target(
            provider.base_url.rstrip("/") + self.path, provider.query, request_headers(provider)
        )
        # whatever this endpoint sends that is secret is redacted from errors and logs
        register(
            provider.resolved_key(),
            *secret_header_values(provider.headers),
            *secret_header_values(provider.query),
        )
        self._read_timeout = provider.read_timeout_s
        self._timeout_s = provider.timeout_s
        self._connect_timeout_s = provider.connect_timeout_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label})"

    async def _open(
        self, body: bytes, *, whole: bool = False, to: Target | None = None
    ) -> Response:
        """POST ``body`` (to ``to``, by default this endpoint's); a response the caller reads
        and closes, or the error, translated.

        Connect errors, timeouts, 429, 5xx and redirects (never followed: they would carry
        the provider's key elsewhere) are ``EngineUnavailable`` (another deployment may
        answer); other 4xx are ``EngineRejected``. ``whole``: a non-streamed call, which may
        take up to ``timeout_s`` to begin.
        """
        request_id = REQUEST_ID.get()  # the client's call, named the same upstream
        extra = b"" if request_id is None else b"X-Request-Id: %s\r\n" % request_id.encode()
        try:
            response = await self._session.post(
                to or self._target,
                body,
                extra,
                connect_timeout=self._connect_timeout_s,
                timeout=self._timeout_s,
                # a non-streamed answer is silent until it is whole: only timeout_s bounds it
                read_timeout=None if whole else self._read_timeout,
            )
        except HTTPError as exc:
            raise EngineUnavailable(f"{self.provider_name}: {self._why(exc)}") from None
        if response.status < 300:
            return response
        try:
            raw = await response.read(64 * 1024)
        except HTTPError:
            raw = b""
        finally:
            response.close()
        if response.status < 400:
            message = f"{self.provider_name} answered {response.status}: a redirect, not followed"
            raise EngineUnavailable(message)
        message = f"{self.provider_name} answered {response.status}: {_error_text(raw)}"
        if response.status == 429 or response.status >= 500:
            raise EngineUnavailable(message)
        raise EngineRejected(message, status=response.status)

    def _why(self, exc: HTTPError) -> str:
        """A failure in words (the client's words never quote a URL, a header or a body)."""
        if isinstance(exc, ConnectFailed):
            return str(exc)
        if isinstance(exc, Silent):
            return f"silent for {self._read_timeout:g} s"
        if isinstance(exc, TimedOut):
            return f"timed out after {self._timeout_s:g} s"
        return f"connection failed ({exc})"

    async def _relay(
        self, body: bytes, parser: _Parser[E], *, to: Target | None = None
    ) -> AsyncIterator[list[E]]:
        """A streamed call's events as ``parser`` reads them, a network read's at a time (the
        first event alone), its failures translated once for every stream: before the first
        event retryable (``EngineUnavailable``), after it a plain ``EngineError``. A stream
        read to its end keeps its connection; one left half-way closes it, which stops the
        upstream. One generator from the socket to the caller: a read's events pass through
        no other layer here, and each layer above once per read, not once per event."""
        response = await self._open(body, to=to)
        started = ended = False
        pending = b""  # a line not ended yet
        try:
            while not parser.ended:
                data = await response.readany()
                if data:
                    lines = (pending + data).split(b"\n")
                    pending = lines.pop()
                    if len(pending) > MAX_EVENT_BYTES:
                        raise _Malformed(f"a line longer than {MAX_EVENT_BYTES} bytes")
                elif pending:
                    lines, pending = [pending], b""
                else:
                    break
                for part in (lines,) if started else _first_apart(lines):
                    events = parser.feed(part)
                    if events:
                        started = True
                        yield events
                    if parser.failed is not None:
                        raise parser.failed
                    if parser.ended:
                        break
            if not started:
                raise EngineUnavailable(f"{self.provider_name}: empty answer")
            ended = True
        except HTTPError as exc:
            what = f"{self.provider_name}: stream broke: {self._why(exc)}"
            raise self._broke(what, started) from None
        except _Malformed as exc:
            what = f"{self.provider_name}: malformed stream event ({exc})"
            raise self._broke(what, started) from None
        except EngineError as exc:  # the upstream reported an error inside its stream
            if isinstance(exc, EngineUnavailable):
                raise
            raise self._broke(str(exc), started) from None
        finally:
            if ended:  # its last event read: the connection is kept once its body has ended
                response.release(DRAIN_S, DRAIN_BYTES)
            else:
                response.close()

    def _broke(self, what: str, started: bool) -> EngineError:
        """The error for a failure while reading: retryable before the first chunk."""
        if not started:
            return EngineUnavailable(what)
        log.warning("upstream %s broke mid-answer: %s", self.label, what)
        return EngineError(what)

    async def _read_whole(self, response: Response) -> bytes:
        """A non-streamed body, with ``read_timeout_s`` allowed between reads; one larger than
        ``MAX_ANSWER_BYTES`` is refused as unavailable (the next deployment may answer)."""
        parts: list[bytes] = []
        size = 0
        while data := await response.readany(self._read_timeout):
            size += len(data)
            if size > MAX_ANSWER_BYTES:
                raise EngineUnavailable(
                    f"{self.provider_name}: answer larger than {MAX_ANSWER_BYTES} bytes"
                )
            parts.append(data)
        return b"".join(parts)

    async def aclose(self) -> None:
        return None


class OpenAICompatEngine(ProviderEndpoint, ChatEngine):
    accepts_images = True
    path = "/chat/completions"

    def __init__(
        self,
        provider_name: str,
        provider: ProviderConfig,
        upstream_model: str,
        session: Client,
        *,
        responses: bool = False,
    ) -> None:
        super().__init__(provider_name, provider, upstream_model, session)
        #: the upstream also speaks the Responses API (``engines.base.ResponsesEngine``)
        self.speaks_responses = responses
        self._responses_target = target(
            provider.base_url.rstrip("/") + "/responses", provider.query, request_headers(provider)
        )

    def respond(self, body: dict[str, Any], *, stream: bool) -> AsyncIterator[list[ResponsesEvent]]:
        """``POST /responses`` with ``body`` (our upstream model named in it): its events as
        they come (a read's at a time), or one whole ``response`` object. Failures are
        translated as a chat stream's; an ``error`` event, or an answer that is not a
        response, is a failure."""
        payload = orjson.dumps({**body, "model": self.model_id})
        if stream:
            return self._relay(payload, _ResponsesParser(self), to=self._responses_target)
        return self._one_response(payload)

    async def _one_response(self, payload: bytes) -> AsyncIterator[list[ResponsesEvent]]:
        response = await self._open(payload, whole=True, to=self._responses_target)
        yield [await self._whole_response(response)]

    async def _whole_response(self, response: Response) -> ResponsesEvent:
        try:
            raw = await self._read_whole(response)
        except HTTPError as exc:
            raise EngineUnavailable(
                f"{self.provider_name}: answer broke: {self._why(exc)}"
            ) from None
        finally:
            response.close()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise EngineUnavailable(f"{self.provider_name}: malformed answer (not JSON)") from None
        if not isinstance(data, dict) or not isinstance(data.get("output"), list):
            raise EngineUnavailable(f"{self.provider_name}: malformed answer (not a response)")
        if data.get("status") == "failed" or data.get("error"):
            raise EngineUnavailable(f"{self.provider_name}: {_error_text(orjson.dumps(data))}")
        usage = self._usage(data.get("usage"), warn=True, parse=parse_responses_usage)
        return ResponsesEvent("response", data, _output_said(data["output"]), usage)

    def count_tokens(self, text: str) -> int:
        return count_text(text, self.model_id)

    def estimate_prompt_tokens(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None
    ) -> int | None:
        return None  # OpenAI's tokenizers count for it: the pipeline's own count is its count

    async def complete(self, params: ChatParams) -> AsyncIterator[ChatChunk]:
        """One non-streamed answer (for clients that asked for one), a chunk per choice: a
        single JSON parse instead of one per token. Usage comes with every such answer (on
        the first chunk, covering every choice)."""
        for chunk in await self._complete(params):
            yield chunk

    async def _complete(self, params: ChatParams) -> list[ChatChunk]:
        body = orjson.dumps(chat_body(params, self.model_id, stream=False))
        response = await self._open(body, whole=True)
        try:
            raw = await self._read_whole(response)
        except HTTPError as exc:
            raise EngineUnavailable(
                f"{self.provider_name}: answer broke: {self._why(exc)}"
            ) from None
        finally:
            response.close()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise EngineUnavailable(f"{self.provider_name}: malformed answer (not JSON)") from None
        try:
            return self._answer(data, params.n)
        except _Malformed as exc:
            raise EngineUnavailable(f"{self.provider_name}: malformed answer ({exc})") from None

    def _answer(self, data: object, n: int) -> list[ChatChunk]:
        if not isinstance(data, dict):
            raise _Malformed("not an object")
        if data.get("error"):
            raise _Malformed(_error_text(orjson.dumps(data)))
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Malformed("no choice")
        if n == 1:
            choices = choices[:1]
        usage = self._usage(data.get("usage"), warn=True)
        model = _model(data)
        chunks = []
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict):
                raise _Malformed("a choice is not an object")
            message = choice.get("message")
            if not isinstance(message, dict):
                raise _Malformed("message is not an object")
            content = _text(message.get("content"), "content") or ""
            calls = message.get("tool_calls")
            chunks.append(
                ChatChunk(
                    content=content,
                    finish_reason=_text(choice.get("finish_reason"), "finish_reason") or "stop",
                    usage=usage if position == 0 else None,
                    model=model,
                    role="assistant",
                    tool_calls=_tool_calls(calls, whole=True) if calls else None,
                    logprobs=_logprobs(choice.get("logprobs")),
                    choice=0 if n == 1 else _choice_index(choice, position, n),
                )
            )
        return chunks

    def stream(self, params: ChatParams) -> AsyncIterator[ChatChunk]:
        return one_by_one(self.steps(params))

    def steps(self, params: ChatParams, *, whole: bool = False) -> AsyncIterator[list[ChatChunk]]:
        if whole:
            return self._whole_step(params)
        body = orjson.dumps(chat_body(params, self.model_id))
        return self._relay(body, _ChatParser(self, params.n))

    async def _whole_step(self, params: ChatParams) -> AsyncIterator[list[ChatChunk]]:
        yield await self._complete(params)

    def _usage(
        self, value: object, *, warn: bool, parse: Callable[[object], Usage | None] = parse_usage
    ) -> Usage | None:
        if value is None:
            return None
        usage = parse(value)
        if usage is None and warn:
            shown = redact(orjson.dumps(value).decode())[:200]
            log.warning(
                "upstream %s sent usage we do not believe, %s; billing our own count",
                self.label,
                shown,
            )
        return usage


class _ChatParser(_Parser[ChatChunk]):
    """A chat stream's events as chunks, until ``[DONE]``. With ``n`` == 1 only an event's
    first choice is read (as index 0, whatever the upstream says); with more, every choice of
    every event, each with its ``index``."""

    __slots__ = ("_n", "_warn")

    def __init__(self, engine: OpenAICompatEngine, n: int) -> None:
        super().__init__(engine)
        self._n = n
        self._warn = True  # about unbelievable usage, once per stream

    def _read(self, lines: list[bytes], chunks: list[ChatChunk]) -> None:
        for line in lines:
            if not line or not line.startswith(b"data:"):  # most are the blank between events
                continue
            try:  # orjson skips the blank after "data:" (an unstripped copy is one less)
                data = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                if line[5:].strip() == b"[DONE]":
                    self.ended = True
                    return
                raise _Malformed("not JSON") from None
            if not isinstance(data, dict):
                raise _Malformed("not an object")
            if data.get("error"):
                raise EngineError(f"{self._engine.provider_name}: {_error_text(line[5:])}")
            raw_usage = data.get("usage")
            if raw_usage is None:
                usage = None
            else:
                usage = self._engine._usage(raw_usage, warn=self._warn)
                self._warn = self._warn and usage is not None
            choices = data.get("choices")
            if choices is None:
                choices = []
            if not isinstance(choices, list):
                raise _Malformed("choices is not a list")
            if not choices:
                if usage is not None:
                    chunks.append(ChatChunk(usage=usage, model=_model(data)))
                continue
            n = self._n
            if n > 1:
                model = _model(data)
                for position, choice in enumerate(choices):
                    index = _choice_index(choice, position, n)
                    chunks.append(
                        _delta_chunk(choice, usage if position == 0 else None, model, index)
                    )
                continue
            # one choice: the token's path, inline (``_delta_chunk`` without the call: calling it
            # costs 1.2 k instructions per event, 3%, in ``bench.instructions --per-event``)
            choice = choices[0]
            if not isinstance(choice, dict):
                raise _Malformed("a choice is not an object")
            delta = choice.get("delta")
            if delta is None:
                delta = {}
            if not isinstance(delta, dict):
                raise _Malformed("delta is not an object")
            content, role = delta.get("content"), delta.get("role")
            finish, model = choice.get("finish_reason"), data.get("model")
            calls = delta.get("tool_calls")
            logprobs = choice.get("logprobs")
            chunks.append(  # by position (ChatChunk's order): by name is 3 k instructions more
                ChatChunk(
                    content if type(content) is str else _text(content, "content"),
                    finish if finish is None else _text(finish, "finish_reason"),
                    usage,
                    model if type(model) is str and model else None,
                    role if role is None else _text(role, "role"),
                    _tool_calls(calls, whole=False) if calls else None,
                    _logprobs(logprobs) if logprobs is not None else None,
                )
            )


class _Malformed(Exception):
    """An upstream's answer or event has a shape we did not expect; translated by the caller."""


def _text(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _Malformed(f"{name} is not a string")


def _model(data: dict[str, Any]) -> str | None:
    model = data.get("model")
    return model if isinstance(model, str) and model else None


def _delta_chunk(choice: object, usage: Usage | None, model: str | None, index: int) -> ChatChunk:
    """One streamed choice's step as a chunk."""
    if not isinstance(choice, dict):
        raise _Malformed("a choice is not an object")
    delta = choice.get("delta")
    if delta is None:
        delta = {}
    if not isinstance(delta, dict):
        raise _Malformed("delta is not an object")
    calls = delta.get("tool_calls")
    logprobs = choice.get("logprobs")
    return ChatChunk(
        content=_text(delta.get("content"), "content"),
        finish_reason=_text(choice.get("finish_reason"), "finish_reason"),
        usage=usage,
        model=model,
        role=_text(delta.get("role"), "role"),
        tool_calls=_tool_calls(calls, whole=False) if calls else None,
        logprobs=_logprobs(logprobs) if logprobs is not None else None,
        choice=index,
    )


def _choice_index(choice: object, position: int, n: int) -> int:
    """A choice's ``index`` (its place in the list when it names none), one of the ``n``."""
    if not isinstance(choice, dict):
        raise _Malformed("a choice is not an object")
    index = choice.get("index", position)
    if type(index) is not int or not 0 <= index < n:
        raise _Malformed(f"a choice's index is not one of the {n} asked for")
    return index


def _tool_calls(value: object, *, whole: bool) -> list[ToolCallPart]:
    """An answer's ``tool_calls`` (``whole``: a message's, each call complete) or a stream
    delta's (pieces, each with its ``index``), as engine pieces: a function call's
    ``function`` (name, arguments) or a custom tool's ``custom`` (name, input)."""
    if not isinstance(value, list):
        raise _Malformed("tool_calls is not a list")
    parts = []
    for position, call in enumerate(value):
        if not isinstance(call, dict):
            raise _Malformed("a tool call is not an object")
        custom = call.get("type") == "custom" or "custom" in call
        kind = "custom" if custom else "function"
        body = call.get(kind)
        if body is None and not whole:
            body = {}
        if not isinstance(body, dict):
            raise _Malformed(f"a tool call's {kind} is not an object")
        index = position if whole else call.get("index", position)
        if type(index) is not int or index < 0:
            raise _Malformed("a tool call's index is not a count")
        text = body.get("input") if custom else body.get("arguments")
        parts.append(
            ToolCallPart(
                index=index,
                id=_text(call.get("id"), "tool call id"),
                name=_text(body.get("name"), f"{kind} name"),
                arguments=_text(text, f"{kind} input" if custom else "function arguments") or "",
                kind=kind,
            )
        )
    return parts


def _logprobs(value: object) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise _Malformed("logprobs is not an object")


# -- the Responses API, where the upstream speaks it (``[[deployments]] responses = true``) ------

#: stream events whose ``delta`` is output the client receives (counted if the answer breaks)
_OUTPUT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
    }
)
#: the events that end a Responses stream, each with the final ``response`` and its usage
_ENDINGS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _ResponsesParser(_Parser[ResponsesEvent]):
    """A Responses stream's events (each ``data:`` line one JSON object with its ``type``),
    until the one that ends the response."""

    __slots__ = ()

    def _read(self, lines: list[bytes], events: list[ResponsesEvent]) -> None:
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # ``event:`` lines repeat the data's type; empty lines part events
            payload = line[5:].strip()
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise _Malformed("not JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise _Malformed("not an event object")
            kind = data["type"]
            if kind == "error":
                message = data.get("message")
                said = redact(message)[:500] if isinstance(message, str) else "an error event"
                raise EngineError(f"{self._engine.provider_name}: {said}")
            if kind in _OUTPUT_DELTAS:
                events.append(ResponsesEvent(kind, data, _text(data.get("delta"), "delta") or ""))
            elif kind in _ENDINGS:
                body = data.get("response")
                if not isinstance(body, dict):
                    raise _Malformed(f"{kind} carries no response")
                usage = self._engine._usage(
                    body.get("usage"), warn=True, parse=parse_responses_usage
                )
                events.append(ResponsesEvent(kind, data, usage=usage))
                self.ended = True
                return
            else:
                events.append(ResponsesEvent(kind, data))


def parse_responses_usage(data: object) -> Usage | None:
    """A Responses ``usage`` (``input_tokens``, ``output_tokens`` and their details), or None
    when it is absent or not believable (the rules of :func:`parse_usage`)."""
    if not isinstance(data, dict):
        return None
    prompt = _count(data.get("input_tokens"))
    completion = _count(data.get("output_tokens"))
    if prompt is None or completion is None:
        return None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(_detail(data.get("input_tokens_details"), "cached_tokens"), prompt),
        reasoning_tokens=min(
            _detail(data.get("output_tokens_details"), "reasoning_tokens"), completion
        ),
    )


def _output_said(output: list[Any]) -> str:
    """A whole response's output text and calls' arguments or input (what is counted when
    the upstream's usage is not believable)."""
    said: list[str] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        for key in ("arguments", "input"):  # a function's call, a custom tool's
            if isinstance(item.get(key), str):
                said.append(item[key])
        content = item.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                said.append(part["text"])
    return "".join(said)
