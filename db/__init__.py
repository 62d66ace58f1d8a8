"""Persistence: SQLModel tables, the engine factory, migrations and the change feed.

Never imports Textual. Nothing here builds an engine at import time.
"""
