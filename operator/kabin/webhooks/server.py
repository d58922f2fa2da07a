"""Where the admission webhooks are served, and with which certificate.

Locally (the default) they listen on 127.0.0.1 with a self-signed certificate
made at start-up, and the operator registers the webhook configurations itself,
so `kabin operator` needs no flags against the local control plane. In a
cluster, a cert-manager Secret is mounted (KABIN_WEBHOOK_CERT_DIR) and the
manifests point the webhook configurations at the Service.
"""

from __future__ import annotations

import datetime
import ipaddress
import tempfile
from pathlib import Path

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kabin.settings import OperatorSettings

CONFIGURATION_NAME = "webhooks.kabin.dev"


def self_signed(host: str, into: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for `host` (a name or an IP) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = into / "tls.crt", into / "tls.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """Point kopf's admission server and its managed configurations at ours."""
    if ours.webhook_cert_dir:
        certs = Path(ours.webhook_cert_dir)
        settings.admission.server = kopf.WebhookServer(
            addr="0.0.0.0",  # behind the cluster's Service
            port=ours.webhook_port or 9443,
            host=ours.webhook_host,
            certfile=certs / "tls.crt",
            pkeyfile=certs / "tls.key",
            cafile=certs / "ca.crt",
        )
    else:
        into = Path(tempfile.mkdtemp(prefix="kabin-webhook-"))
        certfile, keyfile = self_signed(ours.webhook_host, into)
        settings.admission.server = kopf.WebhookServer(
            addr=ours.webhook_host,
            port=ours.webhook_port or None,
            host=ours.webhook_host,
            certfile=certfile,
            pkeyfile=keyfile,
            cafile=certfile,
        )
    if ours.webhook_managed:
        settings.admission.managed = CONFIGURATION_NAME
