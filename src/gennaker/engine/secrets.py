"""Secret parameters: masked wherever an execution is shown or written down.

A pipeline marks a parameter ``secret: true``. Its real value is kept in one place only, the
execution's trigger (``trigger.params``), because the engine needs it to resolve commands; the
trigger also lists the secret names (``trigger.secrets``). Everything else masks it:

- stage log lines and stage outputs are stored masked (``mask`` on the way in);
- the operations record of a start stores the parameters masked;
- every read model (``gennaker.engine.views``: executions, stages, operations, logs) masks on the way
  out as well, so a value that reached storage some other way (a stage message, a resolved config)
  is still never returned.

Masking replaces every occurrence of a secret's text — as given, quoted for a shell, escaped in JSON;
longest first, so a secret containing another is masked whole — with ``MASK``. A value is matched as
text: one that only appears transformed (base64-encoded, split across lines) is not recognised.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "••••••"
SECRETS_KEY = "secrets"  # trigger["secrets"]: the names of the secret parameters


def secret_names(trigger: Mapping[str, Any] | None) -> list[str]:
    names = (trigger or {}).get(SECRETS_KEY) or []
    return [str(n) for n in names]


def secret_values(trigger: Mapping[str, Any] | None) -> list[str]:
    """The texts to mask for an execution: its secret parameters' values, and the forms a value takes
    when quoted for a shell (a command line in the log) or escaped in JSON; longest first."""
    params = (trigger or {}).get("params") or {}
    values: set[str] = set()
    for name in secret_names(trigger):
        v = _text(params.get(name))
        if v:
            values |= {v, shlex.quote(v), json.dumps(v)[1:-1]}
    return sorted(values, key=len, reverse=True)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def mask_text(text: str, values: Iterable[str]) -> str:
    for v in values:
        if v in text:
            text = text.replace(v, MASK)
    return text


def mask(obj: Any, values: list[str]) -> Any:
    """``obj`` (any JSON-like value) with every secret text masked; ``obj`` itself when there is none."""
    if not values:
        return obj
    if isinstance(obj, str):
        return mask_text(obj, values)
    if isinstance(obj, Mapping):
        return {mask(k, values): mask(v, values) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [mask(x, values) for x in obj]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool) and _text(obj) in values:
        return MASK  # a numeric secret stored as a number (e.g. an output parsed from JSON)
    return obj


def mask_params(params: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Parameters with each secret one's value replaced (by name: whatever its value and type)."""
    secret = set(names)
    return {k: (MASK if k in secret and v not in (None, "") else v) for k, v in params.items()}


def public_trigger(trigger: Mapping[str, Any] | None) -> dict[str, Any]:
    """A trigger as it may be shown: secret parameters masked, the engine's base_dir left out."""
    t = {k: v for k, v in (trigger or {}).items() if k != "base_dir"}
    if isinstance(t.get("params"), Mapping):
        t["params"] = mask_params(t["params"], secret_names(trigger))
    return t
