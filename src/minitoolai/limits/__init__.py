"""Rate limits per API key and per account: requests, tokens and images per minute, and
requests in flight (docs/limits.md). ``service`` admits and finishes requests; ``backend``
holds the contract and the in-process counters; ``redis_backend`` the shared ones."""
