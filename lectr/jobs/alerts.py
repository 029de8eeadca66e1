"""Email alerts over SMTP for anomalies.

Settings (lectr.common.jobsettings) come from the environment (LECTR_SMTP_*) for the CLI,
and from the proxy's `lectr_smtp_*` options, which default to the same variables. The
password is only ever read from LECTR_SMTP_PASSWORD, so it never appears in an options dump.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from lectr.common.jobsettings import SmtpSettings
from lectr.jobs.anomaly import Finding

NOT_CONFIGURED = "not configured"  # how a stored notify_error that is no failure starts


def not_configured(settings: SmtpSettings) -> str:
    """Why no alert went out when email is not set up: stored with the anomaly (as notify_error), so the
    dashboard can tell it from a failed delivery."""
    names = settings.missing
    options = ", ".join(name.lower() for name in names)
    return f"{NOT_CONFIGURED}: set {' and '.join(names)} (the proxy's {options}) to email alerts"


def is_not_configured(notify_error: str | None) -> bool:
    return bool(notify_error) and notify_error.startswith(f"{NOT_CONFIGURED}:")


def compose(findings: list[Finding], sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    worst = "critical" if any(f.severity == "critical" for f in findings) else "warning"
    orgs = sorted({f.org_id for f in findings})
    message = EmailMessage()
    noun = "anomaly" if len(findings) == 1 else "anomalies"
    message["Subject"] = f"[Lectr {worst}] {len(findings)} {noun} for {', '.join(orgs)}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    lines = [
        "Lectr found unusual traffic in the last hour, compared with the hour-long windows of the past week.",
        "",
    ]
    for f in findings:
        scope = f"org {f.org_id}" + (f", feature {f.feature}" if f.feature else "")
        lines.append(
            f"- {f.severity.upper()}: {scope}: {f.metric} was {f.observed:.4g} where {f.expected:.4g} is usual "
            f"(robust z-score {f.score:.1f})"
        )
    lines += ["", "The same anomaly is not mailed again while it lasts; the dashboard lists it until it clears."]
    message.set_content("\n".join(lines))
    return message


def send(settings: SmtpSettings, message: EmailMessage, timeout: float = 10.0) -> None:
    """Deliver one message. Raises OSError / smtplib.SMTPException with the server's reason."""
    with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password)
        smtp.send_message(message)
