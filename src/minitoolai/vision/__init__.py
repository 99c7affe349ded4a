"""Vision input: image parts of chat messages -> checked bytes and billed tokens.

The chat endpoint accepts parts ``{"type": "image_url", "image_url": {"url": ..., "detail":
"auto"|"low"|"high"}}`` whose URL is ``http(s)://...`` or ``data:image/...;base64,...``. The
gateway fetches remote images itself, so engines only ever see ``data:`` URLs, and it checks the
real format (JPEG, PNG, WebP, GIF, animated GIF included) from magic numbers, never from a file
name, a declared media type or a Content-Type.

Public API::

    policy = FetchPolicy(                     # once, from operator config; immutable
        allowed_networks=(),                  # extra CIDRs to trust; default: public only
        max_bytes=20 * MiB, timeout_s=10.0, max_redirects=3, max_pixels=50_000_000,
        ssl_context=None,                     # None: system CAs
    )
    image = await load_image(url, policy)     # -> ImageInput
    image.format, image.mime, image.width, image.height          # "png", "image/png", 640, 480
    image.data, image.data_url()              # bytes / "data:image/png;base64,..."
    image_tokens(model, image.width, image.height, detail)       # -> prompt tokens (int)

``async load_image(url: str, policy: FetchPolicy, *, resolver: Resolver | None = None)
-> ImageInput``. ``resolver`` is an ``async (host) -> [ip, ...]`` callable (default
``system_resolver``, i.e. ``getaddrinfo``); tests inject one to map names without DNS. There is
deliberately no ``session`` argument: a shared ``aiohttp.ClientSession`` resolves names itself
(and may honour proxy variables), which would re-open the DNS-rebinding hole; every hop gets its
own short-lived session pinned to the addresses that were checked (see ``fetch``).

``image_tokens(model: str, width: int, height: int, detail: str = "auto") -> int`` implements
OpenAI's published rules per model; ``rule_for_model(model)`` shows which rule applies. See
``tokens`` for the rules and for the choices where OpenAI is silent (``auto``, rounding,
unknown models).

The chat pipeline's image resolver (``chat.images``) uses it for each image part (validated
once, by ``chat.schemas.ImagePart``): ``load_image``, the part's URL replaced by
``image.data_url()`` (``detail`` kept), ``image_tokens(...)`` added to the hold's prompt
estimate. Engines without image input are refused before anything is fetched; a request's
images load concurrently, each with its own deadline and byte cap.

Errors: everything raised is an ``APIError`` with ``param="messages"``: ``InvalidRequest`` (400)
with ``code`` ``invalid_image_url``, ``invalid_image_detail``, ``image_url_forbidden``,
``image_fetch_failed``, ``image_fetch_timeout``, ``invalid_image_format`` or
``image_too_many_pixels``; ``PayloadTooLarge`` (413) with ``code`` ``image_too_large``.
``FetchPolicy(...)`` raises ``ValueError`` for bad operator config (e.g. a malformed CIDR).

Modules: ``policy`` (which addresses are allowed; host spellings), ``fetch`` (SSRF-safe GET
with pinned DNS and manual redirects), ``dataurl``, ``headers`` (magic numbers and header
sizes), ``image`` (``ImageInput``, ``probe_image``), ``tokens`` (billing rules), ``loader``.
"""

from minitoolai.vision.fetch import Resolver, system_resolver
from minitoolai.vision.image import ImageInput, probe_image
from minitoolai.vision.loader import load_image
from minitoolai.vision.policy import FetchPolicy, MiB
from minitoolai.vision.tokens import image_tokens, image_tokens_floor, rule_for_model

__all__ = [
    "FetchPolicy",
    "ImageInput",
    "MiB",
    "Resolver",
    "image_tokens",
    "image_tokens_floor",
    "load_image",
    "probe_image",
    "rule_for_model",
    "system_resolver",
]
