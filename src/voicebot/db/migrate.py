"""Run the Alembic migrations programmatically (``voicebot db upgrade``, the demo, tests)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config


class MigrationsNotFound(RuntimeError):
    pass


def migrations_dir() -> Path:
    """Where ``alembic.ini`` and ``migrations/`` live: VOICEBOT_MIGRATIONS_DIR, the working
    directory, or the source checkout this package was installed from."""
    candidates = []
    if env := os.environ.get("VOICEBOT_MIGRATIONS_DIR"):
        candidates.append(Path(env))
    candidates.append(Path.cwd())
    candidates.append(Path(__file__).resolve().parents[3])
    for root in candidates:
        if (root / "alembic.ini").is_file() and (root / "migrations" / "env.py").is_file():
            return root
    raise MigrationsNotFound(
        "cannot find alembic.ini and migrations/: run from the project directory "
        "or set VOICEBOT_MIGRATIONS_DIR"
    )


def alembic_config(database_url: str) -> Config:
    root = migrations_dir()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``. Synchronous: it runs its own event loop, so call it
    before the service's loop starts or from a worker thread."""
    command.upgrade(alembic_config(database_url), revision)
