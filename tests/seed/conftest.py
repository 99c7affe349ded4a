from tests.chat.conftest import gateway, upstream
from tests.images.conftest import image_gateway

__all__ = ["gateway", "image_gateway", "upstream"]
