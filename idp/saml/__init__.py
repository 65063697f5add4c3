"""SAML 2.0 protocol logic: pure functions, no Flask (DESIGN.md §8.4)."""
