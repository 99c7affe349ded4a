"""The storefront: server-rendered pages on the API's own server (docs/web.md)."""
