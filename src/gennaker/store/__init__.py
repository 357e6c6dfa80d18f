"""Persistence: SQLAlchemy Core tables, Alembic migrations, SQLite by default, PostgreSQL to scale out."""
