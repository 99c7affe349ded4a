"""The API reference the ``/docs`` page shows: each path with a short description, its main
parameters and a curl and a Python example. Plain data, written from docs/api.md and
docs/images.md (the source of truth; the page links to them for every rule). Examples hold
``{base}`` where this server's base URL goes and ``YOUR_KEY`` where the reader's key goes:
the page never shows a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from minitoolai.catalog import (
    CHAT_MAX_CHOICES,
    IMAGE_CFG_SCALE_RANGE,
    IMAGE_SIZE_RANGE,
    IMAGE_STEPS_RANGE,
    SPEECH_MAX_INPUT_CHARS,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    anchor: str
    method: str
    path: str
    title: str
    description: str
    params: tuple[tuple[str, str], ...]
    curl: str
    python: str


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    intro: str
    endpoints: tuple[Endpoint, ...]


_AUTH = '-H "Authorization: Bearer YOUR_KEY" -H "Content-Type: application/json"'
_CLIENT = 'from openai import OpenAI\n\nclient = OpenAI(base_url="{base}/v1", api_key="YOUR_KEY")\n'
_SIZES = f"{IMAGE_SIZE_RANGE[0]} to {IMAGE_SIZE_RANGE[1]}"

SEED = Section(
    "The seed's paths",
    "The original API: paths end with a slash (and work without it). Chat streams by default.",
    (
        Endpoint(
            "seed-chat",
            "POST",
            "/api/chat-completions/",
            "Chat completions",
            'The seed\'s chat. Streams Server-Sent Events unless "stream": false; every stream '
            "ends with a usage chunk and data: [DONE]. Same body as /v1/chat/completions.",
            (
                ("model", "a chat model this server routes (see /v1/models)"),
                ("messages", "system, user, assistant, tool messages; text and image parts"),
                ("stream", "default true here"),
                ("max_completion_tokens", "1 to 1,000,000, default 1000: what is held"),
            ),
            f"curl -N {{base}}/api/chat-completions/ {_AUTH} \\\n"
            '  -d \'{"model": "gpt-4o-mini",\n'
            '       "messages": [{"role": "user", "content": "Hello!"}]}\'',
            "import requests\n\n"
            'with requests.post("{base}/api/chat-completions/",\n'
            '                   headers={"Authorization": "Bearer YOUR_KEY"},\n'
            '                   json={"model": "gpt-4o-mini",\n'
            '                         "messages": [{"role": "user", "content": "Hello!"}]},\n'
            "                   stream=True) as r:\n"
            "    for line in r.iter_lines():\n"
            "        print(line.decode())",
        ),
        Endpoint(
            "seed-image",
            "POST",
            "/api/texttoimage/",
            "Text-to-image: submit a job",
            "Queues an image job and answers its jobid and signature. The price of one image is "
            "held now, settled when the image is stored, released if it fails or is cancelled.",
            (
                ("model", "one of the 15 image models (realvision, juggernaut, ...)"),
                ("prompt, negativePrompt", "up to 4,000 characters each"),
                ("scheduler", 'one of the 18 schedulers, default "DPM++ SDE"'),
                ("steps", f"{IMAGE_STEPS_RANGE[0]} to {IMAGE_STEPS_RANGE[1]}, default 4"),
                (
                    "cfgScale",
                    f"{IMAGE_CFG_SCALE_RANGE[0]} to {IMAGE_CFG_SCALE_RANGE[1]}, default 2",
                ),
                ("width, height", f"{_SIZES} px, default 1024"),
                ("seed, format", "optional; format png (default), webp or jpeg"),
            ),
            f"curl -s {{base}}/api/texttoimage/ {_AUTH} \\\n"
            '  -d \'{"model": "realvision", "prompt": "a lighthouse at dusk", "steps": 4}\'\n'
            '# {"status":"success","jobid":...,"signature":"..."}',
            "import requests\n\n"
            'job = requests.post("{base}/api/texttoimage/",\n'
            '                    headers={"Authorization": "Bearer YOUR_KEY"},\n'
            '                    json={"model": "realvision", "prompt": "a lighthouse at dusk"}'
            ").json()\n"
            'print(job["jobid"], job["signature"])',
        ),
        Endpoint(
            "seed-jobs",
            "POST",
            "/api/texttoimage/jobs/",
            "Text-to-image: poll a job",
            "No key needed: the signature is the credential. Answers status pending (with "
            "queue_position), processing (with progress from 0 to 1), success (with image_url), "
            "error or cancelled. POST /api/texttoimage/jobs/cancel/ with the same body cancels "
            "a job and releases its hold.",
            (
                ("jobid", "from the submit answer (a string or a number)"),
                ("signature", "from the submit answer"),
            ),
            'curl -s {base}/api/texttoimage/jobs/ -H "Content-Type: application/json" \\\n'
            '  -d \'{"jobid": "JOBID", "signature": "SIGNATURE"}\'',
            "import time, requests\n\n"
            "while True:\n"
            '    state = requests.post("{base}/api/texttoimage/jobs/",\n'
            '                          json={"jobid": job["jobid"],\n'
            '                                "signature": job["signature"]}).json()\n'
            '    if state["status"] not in ("pending", "processing"):\n'
            "        break\n"
            "    time.sleep(1)\n"
            'print(state["image_url"])',
        ),
        Endpoint(
            "seed-speech",
            "POST",
            "/api/texttospeech/",
            "Text-to-speech",
            "The seed-style speech path: JSON in, the audio out, streamed as it is made. "
            "Charged per input character.",
            (
                ("model", "tts-1 (default), tts-1-hd or gpt-4o-mini-tts"),
                ("input", f"1 to {SPEECH_MAX_INPUT_CHARS:,} characters"),
                ("voice", "alloy (default), ash, ballad, coral, echo, ... "),
                ("responseFormat", "mp3 (default), opus, aac, flac, wav, pcm"),
                ("speed", "0.25 to 4, default 1"),
            ),
            f"curl -s {{base}}/api/texttospeech/ {_AUTH} -o hello.mp3 \\\n"
            '  -d \'{"input": "Hello!", "voice": "alloy"}\'',
            "import requests\n\n"
            'audio = requests.post("{base}/api/texttospeech/",\n'
            '                      headers={"Authorization": "Bearer YOUR_KEY"},\n'
            '                      json={"input": "Hello!"}).content\n'
            'open("hello.mp3", "wb").write(audio)',
        ),
    ),
)

OPENAI = Section(
    "OpenAI's paths (/v1)",
    "OpenAI's API, so the official SDKs work with only base_url changed.",
    (
        Endpoint(
            "v1-chat",
            "POST",
            "/v1/chat/completions",
            "Chat completions, with tools and structured output",
            'Every parameter of OpenAI\'s chat reference. Not streamed unless "stream": true '
            "(the usage chunk with stream_options.include_usage). Function and custom tools, "
            "tool_choice, and response_format json_object / json_schema.",
            (
                ("model, messages", "as for the seed's chat"),
                (
                    "tools, tool_choice",
                    "function tools and custom tools; the calls come back as message.tool_calls",
                ),
                ("response_format", "text, json_object or json_schema"),
                ("n", f"1 to {CHAT_MAX_CHOICES} choices"),
                ("temperature, top_p, stop, seed, ...", "OpenAI's ranges"),
            ),
            f"curl -s {{base}}/v1/chat/completions {_AUTH} \\\n"
            '  -d \'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather '
            'in Rome?"}],\n'
            '       "tools": [{"type": "function", "function": {"name": "weather",\n'
            '         "parameters": {"type": "object", "properties": {"city": {"type": '
            '"string"}}}}}]}\'',
            _CLIENT + "reply = client.chat.completions.create(\n"
            '    model="gpt-4o-mini",\n'
            '    messages=[{"role": "user", "content": "Name three colours as JSON."}],\n'
            '    response_format={"type": "json_object"},\n'
            ")\n"
            "print(reply.choices[0].message.content, reply.usage)",
        ),
        Endpoint(
            "v1-responses",
            "POST",
            "/v1/responses",
            "Responses",
            "OpenAI's Responses API, answered by the chat pipeline and billed as a chat. Stored "
            "unless store is false: GET and DELETE /v1/responses/{id}; previous_response_id "
            "continues a conversation.",
            (
                ("model, input", "a string or input items (messages, function calls, outputs)"),
                ("instructions", "a system message first"),
                ("tools, tool_choice, text.format", "function tools; structured output"),
                ("max_output_tokens", "16 to 1,000,000, default 1000"),
                ("stream", "the response.* events"),
            ),
            f"curl -s {{base}}/v1/responses {_AUTH} \\\n"
            '  -d \'{"model": "gpt-4o-mini", "input": "Say hello."}\'',
            _CLIENT
            + 'first = client.responses.create(model="gpt-4o-mini", input="My name is Ada.")\n'
            "again = client.responses.create(\n"
            '    model="gpt-4o-mini", input="What is my name?", previous_response_id=first.id\n'
            ")\n"
            "print(again.output_text)",
        ),
        Endpoint(
            "v1-embeddings",
            "POST",
            "/v1/embeddings",
            "Embeddings",
            "Vectors for text-embedding-3-small (1,536), -3-large (3,072), ada-002 (1,536) and "
            "all-minilm-l6-v2 (384). Charged per input token.",
            (
                ("model", "one of the names above"),
                ("input", "a string, strings, or token-id arrays; up to 2,048 inputs"),
                ("encoding_format", "float (default) or base64"),
                ("dimensions", "text-embedding-3-* and all-minilm-l6-v2: fewer components"),
            ),
            f"curl -s {{base}}/v1/embeddings {_AUTH} \\\n"
            '  -d \'{"model": "text-embedding-3-small", "input": ["cat", "kitten"]}\'',
            _CLIENT + "reply = client.embeddings.create(\n"
            '    model="text-embedding-3-small", input=["cat", "kitten"]\n'
            ")\n"
            "print(len(reply.data[0].embedding), reply.usage.prompt_tokens)",
        ),
        Endpoint(
            "v1-images",
            "POST",
            "/v1/images/generations",
            "Images",
            "OpenAI's images API on the same jobs: waits for the images and answers their URLs "
            "(or base64). Takes the 15 models and dall-e-2, dall-e-3, gpt-image-1 (mapped by the "
            "operator).",
            (
                ("prompt", "up to 4,000 characters"),
                ("model", "default realvision"),
                ("n", "1 to 4"),
                ("size", f"WxH, each side {_SIZES}, or auto (1024x1024)"),
                ("response_format", "url (default) or b64_json"),
            ),
            f"curl -s {{base}}/v1/images/generations {_AUTH} \\\n"
            '  -d \'{"model": "realvision", "prompt": "a lighthouse", "size": "512x512"}\'',
            _CLIENT + 'image = client.images.generate(model="realvision", prompt="a lighthouse",'
            ' size="512x512")\n'
            "print(image.data[0].url)",
        ),
        Endpoint(
            "v1-speech",
            "POST",
            "/v1/audio/speech",
            "Speech",
            "Text to audio, streamed as it is made, or as speech.audio.delta events with "
            "stream_format sse. Charged per input character.",
            (
                ("model", "tts-1, tts-1-hd or gpt-4o-mini-tts"),
                ("input", f"1 to {SPEECH_MAX_INPUT_CHARS:,} characters"),
                (
                    "voice",
                    "alloy, ash, ballad, coral, echo, fable, onyx, nova, sage, shimmer, verse",
                ),
                ("response_format", "mp3 (default), opus, aac, flac, wav, pcm"),
                ("speed", "0.25 to 4"),
            ),
            f"curl -s {{base}}/v1/audio/speech {_AUTH} -o hello.mp3 \\\n"
            '  -d \'{"model": "tts-1", "voice": "alloy", "input": "Hello!"}\'',
            _CLIENT + "with client.audio.speech.with_streaming_response.create(\n"
            '    model="tts-1", voice="alloy", input="Hello!"\n'
            ") as audio:\n"
            '    audio.stream_to_file("hello.mp3")',
        ),
        Endpoint(
            "v1-models",
            "GET",
            "/v1/models",
            "Models",
            "Every name this server sells (chat, images, speech, embeddings) as OpenAI's model "
            "objects; GET /v1/models/{model} answers one, or a 404. A key limited to some "
            "models sees only those.",
            (),
            'curl -s {base}/v1/models -H "Authorization: Bearer YOUR_KEY"',
            _CLIENT + "print([m.id for m in client.models.list()])",
        ),
    ),
)

SECTIONS = (SEED, OPENAI)
