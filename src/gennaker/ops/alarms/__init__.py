"""Recommended CloudWatch alarms (the audit's monitoring findings, remediated) and, for ``kind: local``
accounts, alarm conditions Gennaker evaluates itself."""
