"""``python -m gennaker.sample_app``: the sample application on $PORT."""

from __future__ import annotations

from gennaker.sample_app.app import main

if __name__ == "__main__":
    raise SystemExit(main())
