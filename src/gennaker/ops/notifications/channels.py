"""How each channel type sends one delivery: webhook, slack, email (SMTP), sns.

A sender returns a short note of what the receiver said, or raises ``SendError`` saying whether
trying again could help (a 503, a refused connection: yes; a 404, a rejected password, a missing
secret: no). Every network call has the channel's timeout. Secrets are read from the environment
when sending and never appear in a note or an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx

from gennaker.ops.notifications.deliveries import Notice
from gennaker.spec.config import EmailChannel, NotificationChannel, SlackChannel, SnsChannel, WebhookChannel

SIGNATURE_HEADER = "X-Gennaker-Signature"
DELIVERY_HEADER = "X-Gennaker-Delivery"
EVENT_HEADER = "X-Gennaker-Event"
_SNIPPET = 200  # of a receiver's answer kept in an error


class SendError(Exception):
    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Outgoing:
    delivery_id: str
    channel: str
    notice: Notice
    attempt: int


def _secret(environ: Mapping[str, str], name: str, what: str) -> str:
    value = environ.get(name)
    if not value:
        raise SendError(f"the {what} is read from environment variable {name}, which is not set", retryable=False)
    return value


def payload(out: Outgoing) -> dict[str, Any]:
    """The JSON a webhook receives (and what the tests' receivers read)."""
    n = out.notice
    return {
        "delivery_id": out.delivery_id,
        "event": n.event,
        "title": n.title,
        "text": n.text,
        "link": n.link,
        "application": n.application,
        "severity": n.severity,
        "fields": dict(n.fields),
    }


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` of the raw body, as GitHub's X-Hub-Signature-256; compare with hmac.compare_digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float, what: str) -> httpx.Response:
    try:
        resp = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException:
        raise SendError(f"{what}: no answer within {timeout:g}s") from None
    except httpx.HTTPError as exc:  # refused, reset, DNS: the receiver may be back later
        raise SendError(f"{what}: {type(exc).__name__}: {exc}") from None
    if 200 <= resp.status_code < 300:
        return resp
    retryable = resp.status_code in (408, 425, 429) or resp.status_code >= 500
    snippet = " ".join(resp.text[:_SNIPPET].split())
    raise SendError(f"{what}: HTTP {resp.status_code}{': ' + snippet if snippet else ''}", retryable=retryable)


def send_webhook(ch: WebhookChannel, out: Outgoing, environ: Mapping[str, str]) -> str:
    body = json.dumps(payload(out), sort_keys=True, separators=(",", ":")).encode()
    headers = {
        **ch.headers,
        "Content-Type": "application/json",
        "User-Agent": "gennaker-notifications",
        DELIVERY_HEADER: out.delivery_id,  # the same on every retry: receivers drop repeats by it
        EVENT_HEADER: out.notice.event,
    }
    if ch.secret_env:
        headers[SIGNATURE_HEADER] = signature(_secret(environ, ch.secret_env, "webhook secret"), body)
    resp = _post(ch.url, body, headers, ch.timeout, "webhook")
    return f"HTTP {resp.status_code}"


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(out: Outgoing) -> dict[str, Any]:
    """Block Kit: the title, the text, the fields, and a button to the page it is about."""
    n = out.notice
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": n.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(n.text)[:3000] or " "}},
    ]
    if n.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_mrkdwn(k)}*\n{_mrkdwn(v)}"[:2000]}
                    for k, v in list(n.fields.items())[:10]
                ],
            }
        )
    if n.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": n.link}],
            }
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"delivery {out.delivery_id}"}]})
    fallback = f"{n.title}: {n.text}" + (f" <{n.link}|open>" if n.link else "")
    return {"text": fallback[:3000], "blocks": blocks}


def send_slack(ch: SlackChannel, out: Outgoing, environ: Mapping[str, str]) -> str:
    url = ch.url or _secret(environ, ch.url_env or "", "Slack webhook URL")
    body = json.dumps(slack_message(out)).encode()
    resp = _post(url, body, {"Content-Type": "application/json"}, ch.timeout, "slack")  # the URL is never shown
    return f"HTTP {resp.status_code}"


def email_message(ch: EmailChannel, out: Outgoing) -> EmailMessage:
    n = out.notice
    msg = EmailMessage()
    msg["Subject"] = f"[gennaker] {n.title}"[:200]
    msg["From"] = ch.sender
    msg["To"] = ", ".join(ch.to)
    msg["Message-ID"] = make_msgid(idstring=out.delivery_id, domain=ch.sender.split("@", 1)[1])
    msg[DELIVERY_HEADER] = out.delivery_id
    lines = [n.text, ""]
    lines += [f"{k}: {v}" for k, v in n.fields.items()]
    if n.link:
        lines += ["", n.link]
    msg.set_content("\n".join(lines).strip() + "\n")
    return msg


def send_email(ch: EmailChannel, out: Outgoing, environ: Mapping[str, str]) -> str:
    username = ch.username or (environ.get(ch.username_env) if ch.username_env else None)
    password = _secret(environ, ch.password_env, "SMTP password") if ch.password_env else None
    if ch.username_env and not username:
        raise SendError(f"the SMTP user is read from environment variable {ch.username_env}, which is not set", False)
    try:
        with smtplib.SMTP(ch.host, ch.port, timeout=ch.timeout) as smtp:
            smtp.ehlo()
            secure = False
            if ch.starttls != "off" and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context(cafile=ch.ca_file))
                smtp.ehlo()
                secure = True
            elif ch.starttls == "required":
                raise SendError(f"{ch.host}:{ch.port} does not offer STARTTLS (starttls: required)", retryable=False)
            if username and password:
                if not secure and ch.starttls != "off":
                    # never send a password in the clear unless the channel says the relay is trusted
                    raise SendError(f"{ch.host}:{ch.port} offers no STARTTLS; refusing to log in in the clear", False)
                smtp.login(username, password)
            refused = smtp.send_message(email_message(ch, out))
    except SendError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(f"SMTP login refused: {exc.smtp_code}", retryable=False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError(f"SMTP refused every recipient: {sorted(exc.recipients)}", retryable=False) from None
    except smtplib.SMTPResponseException as exc:  # 4xx: try again later; 5xx: it will not change
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise SendError(f"SMTP {exc.smtp_code}: {text[:_SNIPPET]}", retryable=exc.smtp_code < 500) from None
    except ssl.SSLError as exc:
        raise SendError(f"STARTTLS with {ch.host}:{ch.port} failed: {exc.reason or exc}", retryable=False) from None
    except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, reset, timed out
        raise SendError(f"SMTP {ch.host}:{ch.port}: {type(exc).__name__}: {exc}") from None
    if refused:
        return f"sent; refused by the server for {sorted(refused)}"
    return f"sent to {len(ch.to)} recipient(s)" + (" over STARTTLS" if secure else "")


SnsPublish = Callable[[SnsChannel, Outgoing], str]


@dataclass
class Senders:
    """The senders of each channel type; SNS's comes from the AWS provider package (cloud/aws/sns.py)."""

    environ: Mapping[str, str]
    sns: SnsPublish | None = None

    def send(self, ch: NotificationChannel, out: Outgoing) -> str:
        if isinstance(ch, WebhookChannel):
            return send_webhook(ch, out, self.environ)
        if isinstance(ch, SlackChannel):
            return send_slack(ch, out, self.environ)
        if isinstance(ch, EmailChannel):
            return send_email(ch, out, self.environ)
        if self.sns is None:
            raise SendError("no SNS publisher is configured", retryable=False)
        return self.sns(ch, out)


def describe(ch: NotificationChannel) -> dict[str, Any]:
    """A channel as shown to people: where it goes, never a secret (a Slack URL is one)."""
    if isinstance(ch, WebhookChannel):
        return {"type": ch.type, "target": ch.url.split("?", 1)[0], "signed": bool(ch.secret_env)}
    if isinstance(ch, SlackChannel):
        return {"type": ch.type, "target": "(url from $" + ch.url_env + ")" if ch.url_env else "***"}
    if isinstance(ch, EmailChannel):
        return {"type": ch.type, "target": ", ".join(ch.to), "server": f"{ch.host}:{ch.port}", "starttls": ch.starttls}
    return {"type": ch.type, "target": ch.topic_arn}
