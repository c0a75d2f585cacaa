"""TLS material and client credentials for the secured test broker (``KAFKA_SECURE=1 scripts/kafka.sh start``).

Writes into the given folder (under the git-ignored broker state): a CA (``ca.pem``), the broker's key and
certificate for ``localhost`` and ``127.0.0.1`` as a PKCS#12 keystore (``broker.p12``, password in
``broker.password``: Java reads 3DES-encrypted PKCS#12, not PBES2-encrypted PEM keys), and for each principal a client
certificate (``<name>.pem``, ``<name>.key``) and a password (``<name>.password``) for SCRAM and PLAIN. Existing
material is kept: the broker's SCRAM credentials are set once, when its storage is formatted.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PRINCIPALS = ("worker", "analyst", "security", "shipper", "admin")
VALID = dt.timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def main(folder: Path) -> int:
    if (folder / "broker.p12").exists():
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
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALID)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    key, certificate = leaf("localhost", server=True)
    password = secrets.token_urlsafe(18)
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
    _private(folder / "broker.password", password.encode())
    for principal in PRINCIPALS:
        key, certificate = leaf(principal, server=False)
        (folder / f"{principal}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        unencrypted = serialization.NoEncryption()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, unencrypted)
        _private(folder / f"{principal}.key", pem)
        _private(folder / f"{principal}.password", secrets.token_urlsafe(18).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
