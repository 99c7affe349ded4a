"""People: the storefront's users (email + password), their sessions and password resets."""
