"""The newest migration, as a constant: lets start-up check the schema without importing Alembic.

tests/test_migrations.py fails if this falls behind the migrations folder.
"""

HEAD_REVISION = "0012"
