"""``POST /hooks/sns`` over HTTP with messages signed here: a test signing certificate (RSA) served
over real https (a certificate made here, given as incidents.sns.ca_file; the allowed certificate
host set to 127.0.0.1 through incidents.sns.cert_hosts — the verifier itself is the real one).

Signed v1 (SHA1) and v2 (SHA256) Notifications open incidents; the same delivery twice creates one;
forged, tampered, unsigned or wrongly hosted messages are refused with a 403 and store nothing;
malformed bodies get a 400 (413 when too large); a subscription is confirmed by fetching its
SubscribeURL; unsigned messages pass only with accept_unsigned and only from loopback."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gennaker.api.app import create_app
from gennaker.ops.incidents import store
from gennaker.ops.incidents.tables import alarm_transitions, incidents
from gennaker.runtime import Runtime
from tests.conftest import free_port
from tests.incidents.support import runtime

TOPIC = "arn:aws:sns:us-east-1:123456789012:gennaker-alarms"
OUTSIDE = ("203.0.113.5", 40000)  # a client that is not this machine
LOOPBACK = ("127.0.0.1", 40000)


def _self_signed(common_name: str, key: Any, *, ip: bool = False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(common_name))]), False
        )
    return builder.sign(key, hashes.SHA256())


@dataclass
class CertHost:
    """An https server on 127.0.0.1: the signing certificate at /SimpleNotificationService-test.pem,
    and a record of every other GET (subscription confirmations)."""

    base: str
    ca_file: str
    signing_key: rsa.RSAPrivateKey
    gets: list[str] = field(default_factory=list)

    @property
    def cert_url(self) -> str:
        return f"{self.base}/SimpleNotificationService-test.pem"


@pytest.fixture(scope="module")
def cert_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertHost]:
    tmp = tmp_path_factory.mktemp("sns-certs")
    tls_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tls_cert = _self_signed("127.0.0.1", tls_key, ip=True)
    (tmp / "tls.crt").write_bytes(tls_cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "tls.key").write_bytes(
        tls_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_pem = _self_signed("sns.us-east-1.amazonaws.com", signing_key).public_bytes(serialization.Encoding.PEM)
    port = free_port()
    host = CertHost(f"https://127.0.0.1:{port}", str(tmp / "tls.crt"), signing_key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"ok"
            if self.path.endswith(".pem"):
                body = signing_pem
            host.gets.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield host
    server.shutdown()
    server.server_close()


def _extra(cert_host: CertHost, accept_unsigned: bool = False) -> str:
    return (
        "  sns:\n"
        f"    accept_unsigned: {'true' if accept_unsigned else 'false'}\n"
        "    cert_hosts: ['127\\.0\\.0\\.1']\n"
        "    subscribe_hosts: ['127\\.0\\.0\\.1']\n"
        f"    ca_file: {cert_host.ca_file}\n"
        "    max_body: 4096\n"
    )


@pytest.fixture
def rt(cert_host: CertHost, tmp_path: Path) -> Iterator[Runtime]:
    runtime_ = runtime("http://127.0.0.1:9", "http://127.0.0.1:9", tmp_path, _extra(cert_host))
    yield runtime_
    runtime_.db.dispose()


def client(rt: Runtime, peer: tuple[str, int] = OUTSIDE) -> TestClient:
    return TestClient(create_app(rt), base_url="http://127.0.0.1", client=peer)


# ---- messages, signed as SNS signs them (the canonical form written out here, from AWS's docs) --------
def alarm_message(name: str = "shop-5xx", state: str = "ALARM", at: str = "2026-12-02T03:49:09.123+0000") -> str:
    return json.dumps(
        {
            "AlarmName": name,
            "AWSAccountId": "123456789012",
            "NewStateValue": state,
            "NewStateReason": "Threshold Crossed: 1 datapoint [42.0] was greater than the threshold (10.0).",
            "StateChangeTime": at,
            "Region": "US East (N. Virginia)",
            "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}",
            "OldStateValue": "OK",
            "Trigger": {"Dimensions": [{"value": "app/shop/123", "name": "LoadBalancer"}]},
        }
    )


def notification(cert_url: str, message: str, message_id: str = "m-1") -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Subject": 'ALARM: "shop-5xx" in US East (N. Virginia)',
        "Message": message,
        "Timestamp": "2026-12-02T03:49:09.500Z",
        "SigningCertURL": cert_url,
    }


def sign(msg: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "2") -> dict[str, Any]:
    if msg["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{n}\n{msg[n]}\n" for n in names if n in msg)
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {**msg, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode()}


def counts(rt: Runtime) -> tuple[int, int]:
    with rt.db.read() as conn:
        return (
            int(conn.execute(select(func.count()).select_from(incidents)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(alarm_transitions)).scalar_one()),
        )


# ---- tests ------------------------------------------------------------------------------------------
def test_signed_messages_open_incidents_and_duplicates_create_nothing(rt: Runtime, cert_host: CertHost) -> None:
    c = client(rt)
    v2 = sign(notification(cert_host.cert_url, alarm_message()), cert_host.signing_key, "2")
    first = c.post("/hooks/sns", content=json.dumps(v2), headers={"x-amz-sns-message-type": "Notification"})
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "created" and first.json()["verified"] is True
    again = c.post("/hooks/sns", content=json.dumps(v2))  # SNS delivers at least once
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert counts(rt) == (1, 1)

    v1 = sign(notification(cert_host.cert_url, alarm_message("shop-latency"), "m-2"), cert_host.signing_key, "1")
    r = c.post("/hooks/sns", content=json.dumps(v1))
    assert r.status_code == 200 and r.json()["outcome"] == "created"
    with rt.db.read() as conn:
        inc = store.get(conn, r.json()["incident"])
    assert inc["source"] == "sns" and inc["account"] == "123456789012" and inc["region"] == "us-east-1"
    assert cert_host.gets.count("/SimpleNotificationService-test.pem") <= 1  # fetched once, then cached


def test_forged_unsigned_and_foreign_certificates_are_refused(rt: Runtime, cert_host: CertHost) -> None:
    c = client(rt)
    good = sign(notification(cert_host.cert_url, alarm_message()), cert_host.signing_key)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "signed by another key": sign(notification(cert_host.cert_url, alarm_message()), forger),
        "tampered after signing": {**good, "Message": alarm_message(state="OK")},
        "unsigned": notification(cert_host.cert_url, alarm_message()),
        "certificate on another host": sign(
            notification("https://sns.example.com/SimpleNotificationService-x.pem", alarm_message()), forger
        ),
        "certificate over http": sign(
            notification(cert_host.cert_url.replace("https:", "http:"), alarm_message()), cert_host.signing_key
        ),
        "unknown signature version": {**good, "SignatureVersion": "3"},
        "signature not base64": {**good, "Signature": "!!!"},
    }
    for why, body in cases.items():
        r = c.post("/hooks/sns", content=json.dumps(body))
        assert r.status_code == 403, (why, r.status_code, r.text)
        assert r.json()["message"] and "\n" not in r.json()["message"], why
    assert counts(rt) == (0, 0)


def test_malformed_payloads_get_a_clear_4xx(rt: Runtime, cert_host: CertHost) -> None:
    c = client(rt)
    not_alarm = sign(notification(cert_host.cert_url, "hello, not an alarm"), cert_host.signing_key)
    bad_state = sign(notification(cert_host.cert_url, alarm_message(state="ON_FIRE")), cert_host.signing_key)
    bad_time = sign(notification(cert_host.cert_url, alarm_message(at="yesterday")), cert_host.signing_key)
    cases: dict[str, tuple[bytes, int, str]] = {
        "not JSON": (b"{nope", 400, "not JSON"),
        "a JSON list": (b"[1, 2]", 400, "not a JSON object"),
        "unknown Type": (json.dumps({"Type": "Gossip"}).encode(), 400, "Type must be one of"),
        "no Message": (json.dumps({"Type": "Notification", "MessageId": "x"}).encode(), 400, "Message"),
        "Message not an alarm": (json.dumps(not_alarm).encode(), 400, "not a CloudWatch alarm"),
        "unknown state": (json.dumps(bad_state).encode(), 400, "NewStateValue"),
        "bad time": (json.dumps(bad_time).encode(), 400, "StateChangeTime"),
        "too large": (b"{" + b" " * 5000 + b"}", 413, "at most 4096 bytes"),
    }
    for why, (body, status, words) in cases.items():
        r = c.post("/hooks/sns", content=body)
        assert r.status_code == status, (why, r.status_code, r.text)
        assert words in r.json()["message"], (why, r.json())
    assert counts(rt) == (0, 0)


def test_subscription_is_confirmed_by_its_subscribe_url(rt: Runtime, cert_host: CertHost) -> None:
    confirm_url = f"{cert_host.base}/?Action=ConfirmSubscription&Token=tok-123"
    msg = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "s-1",
        "Token": "tok-123",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": confirm_url,
        "Timestamp": "2026-12-02T03:49:09.500Z",
        "SigningCertURL": cert_host.cert_url,
    }
    r = client(rt).post("/hooks/sns", content=json.dumps(sign(msg, cert_host.signing_key)))
    assert r.status_code == 200 and r.json()["confirmed"] is True, r.text
    assert "/?Action=ConfirmSubscription&Token=tok-123" in cert_host.gets
    # a confirmation pointing anywhere else is not followed
    elsewhere = sign({**msg, "SubscribeURL": "https://evil.example.com/confirm"}, cert_host.signing_key)
    r = client(rt).post("/hooks/sns", content=json.dumps(elsewhere))
    assert r.status_code == 403 and "SubscribeURL" in r.json()["message"]


def test_unsigned_messages_only_with_the_setting_and_only_from_loopback(cert_host: CertHost, tmp_path: Path) -> None:
    rt = runtime("http://127.0.0.1:9", "http://127.0.0.1:9", tmp_path, _extra(cert_host, accept_unsigned=True))
    try:
        unsigned = json.dumps(notification(cert_host.cert_url, alarm_message()))
        r = client(rt, OUTSIDE).post("/hooks/sns", content=unsigned)
        assert r.status_code == 403 and "unsigned" in r.json()["message"]
        r = client(rt, LOOPBACK).post("/hooks/sns", content=unsigned)
        assert r.status_code == 200 and r.json()["verified"] is False and r.json()["outcome"] == "created"
        assert counts(rt) == (1, 1)
    finally:
        rt.db.dispose()


def test_the_simulators_deliveries_open_an_incident(moto_endpoint: str, tmp_path: Path) -> None:
    """moto, in server mode, POSTs a published message to an HTTP subscription with a placeholder
    signature; with accept_unsigned the hook takes it from loopback (the setting is for this)."""
    import boto3

    from tests.web.conftest import serve

    extra = "  sns: {accept_unsigned: true, sandbox: true}\n"
    rt = runtime(moto_endpoint, "http://127.0.0.1:9", tmp_path, extra)
    try:
        for url in serve(rt):
            sns = boto3.client(
                "sns",
                endpoint_url=moto_endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            topic = sns.create_topic(Name="gennaker-alarms")["TopicArn"]
            sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"{url}/hooks/sns")
            sns.publish(TopicArn=topic, Subject="ALARM", Message=alarm_message("sim-5xx"))
            deadline = time.monotonic() + 10
            while counts(rt)[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert counts(rt)[0] == 1
            with rt.db.read() as conn:
                [inc] = store.list_incidents(conn)
            assert inc["source"] == "sns" and inc["title"].startswith("sim-5xx")
    finally:
        rt.db.dispose()
