"""What the background jobs are given: their schedule, and the settings of alert emails.

Here, below the proxy, the jobs and the CLI, so that the proxy can offer them as options
(lectr_*_every, lectr_smtp_*) without loading the jobs, whose process is another. The
defaults are written once, here; the environment (LECTR_SMTP_*) overrides them for the
CLI, and is the default of the proxy's options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

# Seconds between runs, in the proxy (lectr_*_every) and in `lectr jobs` (--*-every).
EVERY = {"aggregate": 60, "anomalies": 300, "recommend": 86400}


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 587
    sender: str = "lectr@localhost"
    recipients: tuple[str, ...] = ()
    starttls: bool = True
    user: str = ""
    password: str = ""  # only ever from LECTR_SMTP_PASSWORD, so it never appears in an options dump

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.recipients)

    @property
    def missing(self) -> tuple[str, ...]:
        """The variables an alert email still needs, empty when enabled."""
        return tuple(
            name for name, value in (("LECTR_SMTP_HOST", self.host), ("LECTR_SMTP_TO", self.recipients)) if not value
        )


def env_settings(env: Mapping[str, str] = os.environ) -> SmtpSettings:
    """The LECTR_SMTP_* variables over the defaults above."""
    default = SmtpSettings()
    starttls = env.get("LECTR_SMTP_STARTTLS")
    return SmtpSettings(
        host=env.get("LECTR_SMTP_HOST", default.host),
        port=int(env.get("LECTR_SMTP_PORT") or default.port),
        sender=env.get("LECTR_SMTP_FROM") or default.sender,
        recipients=split_recipients(env.get("LECTR_SMTP_TO", "")),
        starttls=starttls.lower() not in ("0", "false", "no") if starttls is not None else default.starttls,
        user=env.get("LECTR_SMTP_USER", default.user),
        password=env.get("LECTR_SMTP_PASSWORD", default.password),
    )


def split_recipients(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())
