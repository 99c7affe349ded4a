from tests.chat.conftest import gateway, gateway_each_db, upstream

__all__ = ["gateway", "gateway_each_db", "upstream"]
