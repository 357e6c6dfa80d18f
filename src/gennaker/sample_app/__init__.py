"""A small HTTP application to deploy with the local provider (stdlib only, see ``app.py``)."""

from __future__ import annotations

from pathlib import Path

# The directory holding ``app.py``: bake it to get an artifact whose command is ``python3 app.py``.
SOURCE_DIR = Path(__file__).resolve().parent
