"""A self-contained HTML audit report: no network, inline CSS, an inline SVG chart of the score per
pillar, and a findings table filterable by status, pillar, severity and text.

The filter script is inline in the standalone file. A page served under a CSP without inline
scripts passes ``script_src`` to load the same code (``FILTER_JS``) from a file instead.
"""

from __future__ import annotations

from html import escape
from typing import Any

from gennaker.ops.findings import PILLARS, SEVERITIES, STATUSES, score_text

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2733}
h1{margin:0 0 .2rem}.muted{color:#5b6775}.score{font-size:3rem;font-weight:700}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}.card{border:1px solid #d8dee6;border-radius:8px;
padding:.6rem 1rem}table{border-collapse:collapse;width:100%;margin-top:1rem}th,td{text-align:left;
padding:.35rem .5rem;border-bottom:1px solid #e6eaef;vertical-align:top}th{background:#f4f6f9}
.s-PASS{color:#17803d}.s-FAIL{color:#b42318;font-weight:600}.s-UNKNOWN{color:#b54708}.s-NOT_APPLICABLE{color:#667085}
.filters{display:flex;gap:.6rem;flex-wrap:wrap;align-items:center}code{font-size:12px;word-break:break-all}
"""

FILTER_JS = """
(function(){
  var f=document.getElementById('filters'); if(!f) return;
  function apply(){
    var st=f.status.value, pi=f.pillar.value, se=f.severity.value, q=f.q.value.toLowerCase(), n=0;
    document.querySelectorAll('#findings tbody tr').forEach(function(tr){
      var ok=(!st||tr.dataset.status===st)&&(!pi||tr.dataset.pillar===pi)&&(!se||tr.dataset.severity===se)
        &&(!q||tr.textContent.toLowerCase().indexOf(q)>=0);
      tr.hidden=!ok; if(ok) n++;
    });
    document.getElementById('shown').textContent=n;
  }
  f.addEventListener('input',apply); f.addEventListener('change',apply); apply();
})();
"""


def _color(score: float | None) -> str:
    if score is None:
        return "#5b6775"  # n/a: nothing passed or failed
    return "#17803d" if score >= 80 else "#b54708" if score >= 50 else "#b42318"


def pillar_chart(by_pillar: dict[str, Any]) -> str:
    """Horizontal bars, one per pillar, 0-100."""
    rows, bar_w, top = list(by_pillar.items()), 360, 10
    height = top + 34 * len(rows)
    parts = [
        f'<svg id="pillar-chart" role="img" aria-label="Score per pillar" width="{220 + bar_w + 60}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (pillar, p) in enumerate(rows):
        y, w = top + 34 * i, bar_w * (p["score"] or 0) / 100
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="13">{escape(p["title"])}</text>'
            f'<rect x="220" y="{y + 2}" width="{bar_w}" height="20" fill="#eef1f5"/>'
            f'<rect x="220" y="{y + 2}" width="{w:.1f}" height="20" fill="{_color(p["score"])}">'
            f"<title>{escape(pillar)}: {score_text(p['score'])}</title></rect>"
            f'<text x="{220 + bar_w + 8}" y="{y + 16}" font-size="13" '
            f'data-pillar="{escape(pillar)}">{score_text(p["score"])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _options(name: str, values: list[str], label: str) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return f'<label>{label} <select name="{name}"><option value="">all</option>{opts}</select></label>'


def _row(f: dict[str, Any]) -> str:
    status = "SUPPRESSED" if f.get("suppressed") else f["status"]
    rem = f["remediation"]
    return (
        f'<tr data-status="{escape(f["status"])}" data-pillar="{escape(f["pillar"])}" '
        f'data-severity="{escape(f["severity"])}"><td class="s-{escape(f["status"])}">{escape(status)}</td>'
        f"<td>{escape(f['severity'])}</td><td>{escape(f['check_id'])}</td>"
        f'<td>{escape(f["account"])}<br><span class="muted">{escape(f["region"])}</span></td>'
        f"<td><code>{escape(f['resource_id'])}</code></td><td>{escape(f['message'])}</td>"
        f"<td>{escape(rem['text'])}<br><code>{escape(rem['cli'])}</code></td></tr>"
    )


def render_html(report: dict[str, Any], script_src: str | None = None) -> str:
    s = report["summary"]
    order = {"FAIL": 0, "UNKNOWN": 1, "PASS": 2, "NOT_APPLICABLE": 3}
    findings = sorted(report["findings"], key=lambda f: (order[f["status"]], f["check_id"], f["resource_id"]))
    cards = "".join(
        f'<div class="card"><div class="muted">{escape(k)}</div><b>{v}</b></div>' for k, v in s["by_status"].items()
    )
    script = f'<script src="{escape(script_src)}"></script>' if script_src else f"<script>{FILTER_JS}</script>"
    scope = report["scope"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Gennaker audit {escape(report["generated_at"])}</title><style>{CSS}</style></head><body>
<h1>Operations readiness audit</h1>
<div class="muted">{escape(report["generated_at"])} &middot; accounts {escape(", ".join(scope["accounts"]))}
 &middot; regions {escape(", ".join(scope["regions"]))} &middot; gennaker {escape(report["version"])}</div>
<p>Score <span class="score" id="score" style="color:{_color(s["score"])}">{score_text(s["score"])}</span> / 100</p>
{pillar_chart(s["by_pillar"])}
<div class="cards">{cards}</div>
<h2>Findings</h2>
<form id="filters" class="filters" onsubmit="return false">
{_options("status", list(STATUSES), "Status")}{_options("pillar", list(PILLARS), "Pillar")}
{_options("severity", list(SEVERITIES), "Severity")}
<label>Search <input name="q" type="search" placeholder="resource, check, text"></label>
<span class="muted"><span id="shown">{len(findings)}</span> shown</span></form>
<table id="findings"><thead><tr><th>Status</th><th>Severity</th><th>Check</th><th>Account</th><th>Resource</th>
<th>Finding</th><th>Remediation</th></tr></thead><tbody>
{"".join(_row(f) for f in findings)}
</tbody></table>
{script}
</body></html>
"""
