"""An upstream that speaks OpenAI's ``/audio/speech``: the audio is relayed as it arrives.

Errors are translated (and what the upstream says redacted) by ``ProviderEndpoint``; an
upstream silent for ``read_timeout_s`` before its first audio is ``EngineUnavailable`` (another
deployment is tried), after it a plain ``EngineError`` (the audio is cut short).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from minitoolai.engines.base import SpeechParams
from minitoolai.engines.openai_compat import ProviderEndpoint
from minitoolai.infra.http import HTTPError


class OpenAICompatSpeech(ProviderEndpoint):
    path = "/audio/speech"

    async def synthesize(self, params: SpeechParams) -> AsyncIterator[bytes]:
        body = {
            "model": self.model_id,
            "input": params.input,
            "voice": params.voice,
            "response_format": params.response_format,
            "speed": params.speed,
        }
        if params.instructions is not None:
            body["instructions"] = params.instructions
        response = await self._open(orjson.dumps(body))
        started = False
        try:
            async for chunk in response.iter_any():
                started = True
                yield chunk
        except HTTPError as exc:
            what = f"{self.provider_name}: audio stream broke: {self._why(exc)}"
            raise self._broke(what, started) from None
        finally:
            response.close()
