from tests.core.conftest import runtime  # noqa: F401  (the fixture: a runtime on a temporary SQLite database)
