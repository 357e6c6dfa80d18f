"""Who is acting and what they may do: a Principal and the rules that map roles to levels."""

from __future__ import annotations

from dataclasses import dataclass, field

from gennaker.web.settings import LEVELS


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    auth: str = "anonymous"  # session, token, header, anonymous, off (access control off)
    token_id: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.auth not in ("anonymous",)

    @property
    def is_admin(self) -> bool:
        return self.auth == "off" or "admin" in self.roles

    def level(self, application: str | None) -> int:
        """The highest level this principal holds on ``application`` (on any application if None)."""
        if self.auth == "off":
            return LEVELS["admin"]
        best = 0
        for role in self.roles:
            app, sep, lvl = role.rpartition(":")
            if not sep:
                best = max(best, LEVELS.get(role, 0))
            elif application is None or app == application:
                best = max(best, LEVELS.get(lvl, 0))
        return best

    def readable(self) -> frozenset[str] | None:
        """The applications this principal may read, or None for all of them (a global role, or access
        control off). The read models take this set (``gennaker.engine.views``)."""
        if self.auth == "off":
            return None
        apps: set[str] = set()
        for role in self.roles:
            app, sep, lvl = role.rpartition(":")
            if not sep:
                if role in LEVELS:
                    return None
            elif LEVELS.get(lvl, 0) >= LEVELS["viewer"]:
                apps.add(app)
        return frozenset(apps)

    def can(self, level: str, application: str | None) -> bool:
        return self.level(application) >= LEVELS[level]

    def can_judge(self, application: str, stage_roles: list[str]) -> bool:
        """Same rule as ``operations.judge``: named roles only (admins always); no roles named means
        the application's operators."""
        if self.is_admin:
            return True
        if stage_roles:
            return bool(set(stage_roles) & self.roles) and self.can("viewer", application)
        return self.can("operator", application)


OFF = Principal(name="anonymous", auth="off")
