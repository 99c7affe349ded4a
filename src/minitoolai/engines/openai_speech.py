"""An upstream that speaks OpenAI's ``/audio/speech``: the audio is relayed as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from minitoolai.engines.base import SpeechParams
from minitoolai.engines.errors import EngineError, EngineRejected, EngineUnavailable
from minitoolai.engines.openai_compat import ProviderEndpoint, _error_text


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
        try:
            response = await self._session.post(
                self._url,
                data=orjson.dumps(body),
                headers=self._headers,
                params=self._params,
                timeout=self._timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EngineUnavailable(
                f"{self.provider_name}: cannot connect ({type(exc).__name__})"
            ) from None
        started = False
        try:
            if response.status >= 400:
                message = f"{self.provider_name} answered {response.status}: " + _error_text(
                    await response.content.read(64 * 1024)
                )
                if response.status == 429 or response.status >= 500:
                    raise EngineUnavailable(message)
                raise EngineRejected(message, status=response.status)
            async for chunk in response.content.iter_any():
                started = True
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            what = f"{self.provider_name}: audio stream broke ({type(exc).__name__})"
            raise (EngineError(what) if started else EngineUnavailable(what)) from None
        finally:
            response.close()
