"""TLS material and client credentials for the secured test broker (``KAFKA_SECURE=1 scripts/kafka.sh start``).

Writes into the given folder (under the git-ignored broker state): a CA (``ca.pem``), the broker's key and
certificate (``CN=broker``, for ``localhost``, ``127.0.0.1`` and any ``--san`` names) as a PKCS#12 keystore
(``broker.p12``, password in ``broker.password``: Java reads 3DES-encrypted PKCS#12, not PBES2-encrypted PEM keys), and
for each principal a client certificate (``CN=<name>``: ``<name>.pem``, ``<name>.key``) and a password
(``<name>.password``) for SCRAM and PLAIN.

The broker's certificate serves TLS clients and is also its own client certificate on the controller and inter-broker
listeners, where mutual TLS authenticates it as ``User:broker`` (the broker maps ``CN=<name>`` to ``<name>``).

Passwords are kept once written: the broker's SCRAM credentials are set when its storage is formatted. Certificates are
rewritten when ``FORMAT`` changes (what they must contain changed), never otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PRINCIPALS = ("worker", "analyst", "security", "operator", "auditor", "shipper", "admin")
# Bumped when the certificates must change; the folder's "format" file records what it holds.
FORMAT = "3: broker CN=broker, server and client use; auditor"
VALID = dt.timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _private(path: Path, data: bytes) -> None:
    # Created 0600, not chmod-ed after the write: the secret is never readable by others, not even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _password(path: Path) -> str:
    if not path.exists():
        _private(path, secrets.token_urlsafe(18).encode())
    return path.read_text()


def main(folder: Path, extra_names: list[str]) -> int:
    if (folder / "format").exists() and (folder / "format").read_text() == FORMAT:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("pseudonymizer test CA"))
        .issuer_name(_name("pseudonymizer test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(common_name: str, *, server: bool) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # The broker is a client too: of its controller, and of the other brokers.
        usage = (
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            if server
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALID)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if server:
            names: list[x509.GeneralName] = [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
            names += [x509.DNSName(name) for name in extra_names]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    key, certificate = leaf("broker", server=True)
    password = _password(folder / "broker.password")
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())  # noqa: S303 (the PKCS#12 MAC Java's keystore reads; the key is random)
        .build(password.encode())
    )
    _private(
        folder / "broker.p12", pkcs12.serialize_key_and_certificates(b"broker", key, certificate, [ca], encryption)
    )
    for principal in PRINCIPALS:
        key, certificate = leaf(principal, server=False)
        (folder / f"{principal}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        unencrypted = serialization.NoEncryption()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, unencrypted)
        _private(folder / f"{principal}.key", pem)
        _password(folder / f"{principal}.password")
    (folder / "format").write_text(FORMAT)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--san", action="append", default=[], help="another DNS name of the broker (repeatable)")
    arguments = parser.parse_args()
    sys.exit(main(arguments.folder, arguments.san))
