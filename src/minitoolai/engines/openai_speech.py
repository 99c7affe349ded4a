"""An upstream that speaks OpenAI's ``/audio/speech``: the audio is relayed as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from minitoolai.engines.base import SpeechParams
from minitoolai.engines.errors import EngineError, EngineUnavailable
from minitoolai.engines.openai_compat import ProviderEndpoint


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
        response = await self._open(orjson.dumps(body))
        started = False
        try:
            async for chunk in response.content.iter_any():
                started = True
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            what = f"{self.provider_name}: audio stream broke ({type(exc).__name__})"
            raise (EngineError(what) if started else EngineUnavailable(what)) from None
        finally:
            response.close()
