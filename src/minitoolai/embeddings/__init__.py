"""Embeddings: OpenAI's ``/v1/embeddings``, held and settled exactly (per 1M input tokens)."""
