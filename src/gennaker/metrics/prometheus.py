"""Prometheus as a metric source: PromQL templates over ``/api/v1/query_range``.

A query names the server group with ``${scope}`` and the region with ``${location}`` (as in
Kayenta). Values are substituted for where they stand: inside a string literal they are escaped
for that literal (and regex-escaped after ``=~``/``!~``), so a server group name can never change
the query's meaning; outside a literal only plain names are accepted. Prometheus answers one
expression per request, so one fetch is one request per metric and server group over a single
HTTP connection (an ``httpx.Client`` session).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from gennaker.metrics.sources import Fetched, MetricError, MetricQuery, Scope, Series, errors_for

PLACEHOLDER = re.compile(r"\$\{(scope|location)\}")
BARE_VALUE = re.compile(r"^[A-Za-z0-9_:.\-]+$")
REGEX_SPECIAL = set(r"\.+*?()|[]{}^$")
MAX_POINTS = 11_000  # Prometheus refuses ranges of more points than this


class TemplateError(ValueError):
    pass


def render(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``${name}`` replaced by ``values[name]``, escaped for where it stands."""
    out: list[str] = []
    quote: str | None = None  # the quote character of the literal we are in
    literal_is_regex = False
    i = 0
    while i < len(template):
        match = PLACEHOLDER.match(template, i)
        if match:
            out.append(_escaped(values[match.group(1)], quote, literal_is_regex, match.group(0)))
            i = match.end()
            continue
        ch = template[i]
        if quote is None and ch in "\"'`":
            quote = ch
            literal_is_regex = "".join(out).rstrip().endswith(("=~", "!~"))
        elif quote is not None and ch == "\\" and quote != "`" and i + 1 < len(template):
            out.append(template[i : i + 2])  # an escape inside a literal: keep both characters
            i += 2
            continue
        elif ch == quote:
            quote = None
        out.append(ch)
        i += 1
    if quote is not None:
        raise TemplateError(f"unterminated string literal ({quote}) in the query")
    return "".join(out)


def _escaped(value: str, quote: str | None, regex: bool, placeholder: str) -> str:
    if quote is None:
        if not BARE_VALUE.match(value):
            raise TemplateError(f"{placeholder} stands outside quotes and its value {value!r} is not a plain name")
        return value
    if regex:
        value = "".join("\\" + ch if ch in REGEX_SPECIAL else ch for ch in value)
    if quote == "`":
        if "`" in value:
            raise TemplateError(f"{placeholder} stands in a `raw` literal and its value {value!r} has a backtick")
        return value
    escaped = []
    for ch in value:
        if ch in ("\\", quote):
            escaped.append("\\" + ch)
        elif ch == "\n":
            escaped.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\x{ord(ch):02x}")
        else:
            escaped.append(ch)
    return "".join(escaped)


def check_query(query: str) -> str | None:
    """What is wrong with a PromQL template in one line, or None (the syntax is Prometheus' to judge)."""
    try:
        render(query, {"scope": "group", "location": "region"})
    except TemplateError as exc:
        return str(exc)
    return None


class PrometheusSource:
    name = "prometheus"

    def __init__(self, url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.transport = transport
        self.requests = 0  # made so far (benchmarks report requests per interval)

    def check(self, query: str) -> str | None:
        return check_query(query)

    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        step = max(step, 0.001)
        if (end - start).total_seconds() / step > MAX_POINTS:
            return errors_for(queries, scopes, f"the window has more than {MAX_POINTS:,} steps of {step:g}s")
        out: Fetched = {}
        with httpx.Client(base_url=self.url, timeout=self.timeout, transport=self.transport) as client:
            for scope in scopes:
                values = {"scope": scope.server_group, "location": scope.location}
                out[scope.server_group] = {
                    q.name: self._one(client, q.query, values, start, end, step) for q in queries
                }
        return out

    def _one(
        self, client: httpx.Client, template: str, values: dict[str, str], start: datetime, end: datetime, step: float
    ) -> Series | MetricError:
        try:
            expr = render(template, values)
        except TemplateError as exc:
            return MetricError(str(exc))
        params = {
            "query": expr,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step:g}",
        }
        self.requests += 1
        try:
            response = client.post("/api/v1/query_range", data=params)
        except httpx.HTTPError as exc:
            return MetricError(f"prometheus at {self.url} cannot be read: {type(exc).__name__}: {exc}")
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return MetricError(f"prometheus answered HTTP {response.status_code} without a JSON body")
        if body.get("status") != "success":
            detail = body.get("error") or f"HTTP {response.status_code}"
            return MetricError(f"prometheus rejected the query: {body.get('errorType', 'error')}: {detail}")
        return _series(body.get("data"))


def _series(data: Any) -> Series | MetricError:
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        return MetricError("prometheus answered something other than a range of samples (a matrix)")
    result = data["result"]
    if not result:
        return Series()  # no samples in the window: Nodata, decided by the classifier
    if len(result) > 1:
        labels = ", ".join(str(r.get("metric", {})) for r in result[:3])
        return MetricError(
            f"the query returned {len(result)} series ({labels}…); aggregate it to one per server group (e.g. sum)"
        )
    try:
        # Prometheus writes NaN, +Inf and -Inf as strings that float() reads.
        pairs = [(float(t), float(v)) for t, v in result[0].get("values", [])]
    except (TypeError, ValueError) as exc:
        return MetricError(f"prometheus answered samples that are not numbers: {exc}")
    return Series(tuple(t for t, _ in pairs), tuple(v for _, v in pairs))
