"""SNS HTTP(S) deliveries: parse them, verify their signature, confirm subscriptions, and read the
CloudWatch alarm a Notification carries.

A real SNS message is signed (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) over a canonical
string of some of its fields, with the key of the certificate at ``SigningCertURL``. That URL must be
https on a host matching ``incidents.sns.cert_hosts`` (``sns.<region>.amazonaws.com``): anything else
could be anyone's certificate. Certificates are cached by URL. With ``accept_unsigned`` a message from
a loopback client is taken without verification (the simulator signs nothing verifiable); any other
unsigned or badly signed message is refused (``SnsRefused``, a 4xx with one line).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gennaker.ops.incidents.intake import STATES, AlarmTransition
from gennaker.ops.incidents.settings import SnsSettings

TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES: dict[str, Any] = {"1": hashes.SHA1, "2": hashes.SHA256}
CERT_MAX = 16_384


class SnsRefused(Exception):
    """A delivery Gennaker will not take; ``status`` is the HTTP answer (400, 403, 413, 502)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SnsRefused(400, "the body is not JSON (an SNS message is a JSON object)") from None
    if not isinstance(message, dict):
        raise SnsRefused(400, "the body is not a JSON object")
    kind = message.get("Type")
    if kind not in TYPES:
        raise SnsRefused(400, f"Type must be one of {', '.join(TYPES)} (got {str(kind)[:40]!r})")
    for name in _SIGNED[kind]:
        if name != "Subject" and not isinstance(message.get(name), str):
            raise SnsRefused(400, f"an SNS {kind} needs the text field {name}")
    if "Subject" in message and not isinstance(message["Subject"], str | type(None)):
        raise SnsRefused(400, "Subject must be text")
    return message


def string_to_sign(message: dict[str, Any]) -> bytes:
    out = []
    for name in _SIGNED[message["Type"]]:
        if name == "Subject" and message.get("Subject") is None:
            continue
        out.append(f"{name}\n{message[name]}\n")
    return "".join(out).encode()


def _host_allowed(url: str, patterns: list[str], what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise SnsRefused(403, f"{what} must be an https URL (got {url[:200]!r})")
    host = parts.hostname or ""
    if not any(re.fullmatch(p, host) for p in patterns):
        raise SnsRefused(403, f"{what} host {host[:100]!r} is not an SNS host (incidents.sns.cert_hosts)")
    return host


def _tls(settings: SnsSettings) -> ssl.SSLContext:
    """The system's CAs, or only the one configured (a private CA)."""
    return ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else ssl.create_default_context()


@dataclass
class Verifier:
    """Checks signatures with certificates fetched once per URL (one per server, no global cache)."""

    settings: SnsSettings
    _certs: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, message: dict[str, Any], *, loopback: bool) -> bool:
        """True when verified; False when taken unverified (``accept_unsigned`` and a loopback
        client); raises SnsRefused otherwise."""
        if self.settings.accept_unsigned and loopback:
            return False
        signature, version, url = (
            message.get("Signature"),
            message.get("SignatureVersion"),
            message.get("SigningCertURL"),
        )
        if not signature or not url:
            raise SnsRefused(403, "unsigned SNS message refused (no Signature or SigningCertURL)")
        if version not in _HASHES:
            raise SnsRefused(403, f"unknown SignatureVersion {str(version)[:10]!r} (1 or 2)")
        if not isinstance(signature, str) or not isinstance(url, str):
            raise SnsRefused(400, "Signature and SigningCertURL must be text")
        _host_allowed(url, self.settings.cert_hosts, "SigningCertURL")
        if not urlsplit(url).path.endswith(".pem"):
            raise SnsRefused(403, "SigningCertURL must name a .pem certificate")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise SnsRefused(403, "the Signature is not base64") from None
        key = self._key(url)
        try:
            key.verify(raw, string_to_sign(message), padding.PKCS1v15(), _HASHES[version]())
        except InvalidSignature:
            raise SnsRefused(403, "the message's signature does not verify with its signing certificate") from None
        return True

    def _key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._certs.get(url)
        if cached is not None:
            return cached
        try:
            with httpx.stream("GET", url, timeout=self.settings.timeout, verify=_tls(self.settings)) as response:
                if response.status_code != 200:
                    raise SnsRefused(502, f"fetching the signing certificate answered HTTP {response.status_code}")
                pem = b""
                for chunk in response.iter_bytes():
                    pem += chunk
                    if len(pem) > CERT_MAX:
                        raise SnsRefused(502, "the signing certificate is larger than 16 KB")
        except httpx.HTTPError as exc:
            raise SnsRefused(502, f"cannot fetch the signing certificate: {type(exc).__name__}: {exc}") from None
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsRefused(502, "the signing certificate is not a PEM certificate") from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRefused(502, "the signing certificate's key is not RSA")
        with self._lock:
            self._certs[url] = key
        return key


def confirm(message: dict[str, Any], settings: SnsSettings, *, loopback: bool) -> None:
    """Confirm a subscription by fetching its SubscribeURL (an SNS host's https URL; any URL from a
    loopback client in sandbox mode, for the simulator)."""
    url = message["SubscribeURL"]
    if not (settings.sandbox and loopback):
        _host_allowed(url, settings.subscribe_hosts, "SubscribeURL")
    elif urlsplit(url).scheme not in ("http", "https"):
        raise SnsRefused(403, "SubscribeURL must be an http(s) URL")
    try:
        response = httpx.get(url, timeout=settings.timeout, verify=_tls(settings))
    except httpx.HTTPError as exc:
        raise SnsRefused(502, f"confirming the subscription failed: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 300:
        raise SnsRefused(502, f"confirming the subscription answered HTTP {response.status_code}")


def _time(value: Any) -> float:
    if not isinstance(value, str):
        raise SnsRefused(400, "the alarm message needs StateChangeTime")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", value.strip())  # +0000 -> +00:00
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise SnsRefused(400, f"StateChangeTime {value[:40]!r} is not a timestamp") from None


def alarm_transition(message: dict[str, Any], accounts: dict[str, str]) -> AlarmTransition:
    """The CloudWatch alarm change a Notification carries. ``accounts`` maps AWS account ids to the
    configured account names (an unknown id is kept as the account)."""
    try:
        alarm = json.loads(message["Message"])
    except ValueError:
        raise SnsRefused(400, "the Notification's Message is not a CloudWatch alarm (not JSON)") from None
    if not isinstance(alarm, dict):
        raise SnsRefused(400, "the Notification's Message is not a CloudWatch alarm (not an object)")
    name, state = alarm.get("AlarmName"), alarm.get("NewStateValue")
    if not isinstance(name, str) or not 0 < len(name) <= 255:
        raise SnsRefused(400, "the alarm message needs AlarmName (1 to 255 characters)")
    if state not in STATES:
        raise SnsRefused(400, f"NewStateValue must be one of {', '.join(STATES)} (got {str(state)[:40]!r})")
    raw_arn = alarm.get("AlarmArn")
    arn: str = raw_arn if isinstance(raw_arn, str) else ""
    arn_parts = arn.split(":")
    region = arn_parts[3] if len(arn_parts) > 4 and arn_parts[3] else None
    account_id = str(alarm.get("AWSAccountId") or (arn_parts[4] if len(arn_parts) > 4 else "")) or None
    raw_trigger = alarm.get("Trigger")
    trigger: dict[str, Any] = raw_trigger if isinstance(raw_trigger, dict) else {}
    raw_dims = trigger.get("Dimensions")
    dims: list[Any] = raw_dims if isinstance(raw_dims, list) else []
    dimensions = {
        str(d.get("name") or d.get("Name")): str(d.get("value") or d.get("Value")) for d in dims if isinstance(d, dict)
    }
    previous = alarm.get("OldStateValue")
    return AlarmTransition(
        source="sns",
        account=accounts.get(account_id or "", account_id),
        region=region,
        alarm=name,
        state=state,
        previous=previous if previous in STATES else None,
        reason=str(alarm.get("NewStateReason") or "")[:10_000],
        at=_time(alarm.get("StateChangeTime")),
        dimensions=dimensions,
    )
