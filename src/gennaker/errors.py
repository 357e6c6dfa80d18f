"""The errors Gennaker shows to people: each carries a message fit to print, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


class GennakerError(Exception):
    """Base of every error that the CLI and API turn into a clear message and a non-zero exit."""

    exit_code = 1


class NotFound(GennakerError):
    exit_code = 4


class Conflict(GennakerError):
    """The operation does not fit the current state (e.g. judging a stage that is not waiting)."""

    exit_code = 5


class Forbidden(GennakerError):
    exit_code = 6


class ConfigError(GennakerError):
    exit_code = 2


class InvalidInput(GennakerError):
    """A value the caller gave is not acceptable (an unknown parameter, a choice not offered)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One validation problem, located in a file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ValidationFailed(GennakerError):
    """A document failed validation; carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class CloudError(GennakerError):
    """An AWS call failed; the message names the call, account, region and AWS error code."""

    def __init__(self, call: str, account: str, region: str, code: str, message: str):
        self.call, self.account, self.region, self.code = call, account, region, code
        super().__init__(f"AWS {call} failed in account {account}, region {region}: {code}: {message}")
