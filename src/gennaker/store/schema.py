"""Every table Gennaker stores, on one MetaData. Subsystems declare their tables in their own
modules (``gennaker.ops.tables``, ``gennaker.web.tables``) on this same ``metadata``; Alembic
migrations under ``store/migrations/versions`` create them."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)
