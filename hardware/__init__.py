"""Device layer: one ABC per device kind, drivers registered by name. Never imports Textual."""
