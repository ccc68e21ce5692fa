"""Persistence: SQLAlchemy models, the engine and session factory, and the queries the rest uses."""
