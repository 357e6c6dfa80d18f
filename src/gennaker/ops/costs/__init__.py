"""Costs: one neutral query (group by account, service, region, application, environment or a tag;
a period; daily or monthly; unblended or amortized) answered by Cost Explorer or by FOCUS parquet
exports, the budgets beside it, and what a deploy's extra group cost."""

from gennaker.ops.costs.query import CostQuery, Period, parse_period
from gennaker.ops.costs.report import CostReport, CostRow, sparkline
from gennaker.ops.costs.service import CostAccessDenied, get_costs, scoped_query

__all__ = [
    "CostAccessDenied",
    "CostQuery",
    "CostReport",
    "CostRow",
    "Period",
    "get_costs",
    "parse_period",
    "scoped_query",
    "sparkline",
]
