"""A throwaway certificate authority for the simulated cluster (EC P-256 keys, like kubeadm's defaults).

Certificates are written as PEM files because ``ssl.SSLContext.load_cert_chain`` only reads files.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=365)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(slots=True)
class CertificateAuthority:
    common_name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, common_name: str) -> "CertificateAuthority":
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(common_name, key, certificate)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server_pem(self, common_name: str, *, ips: list[str], dns_names: list[str] = (),
                         key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
        """A serving certificate with its key and this CA's certificate, as one PEM chain.

        ``key`` lets many certificates share one key: key generation dominates at 1,000 nodes.
        """
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        return self._issue(_name(common_name), ExtendedKeyUsageOID.SERVER_AUTH, key,
                           x509.SubjectAlternativeName(names))

    def issue_client_pem(self, common_name: str, organizations: tuple[str, ...] = (),
                         key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
        """A client certificate (user ``common_name``, groups ``organizations``, as kube-apiserver reads
        them), its key and this CA's certificate, as one PEM chain."""
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
                            + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return self._issue(subject, ExtendedKeyUsageOID.CLIENT_AUTH, key)

    def _issue(self, subject: x509.Name, usage: x509.ObjectIdentifier, key: ec.EllipticCurvePrivateKey | None,
               alternative_names: x509.SubjectAlternativeName | None = None) -> bytes:
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alternative_names is not None:
            builder = builder.add_extension(alternative_names, critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.PEM) + self.pem + _key_pem(key)


def server_context(chain_path: Path) -> ssl.SSLContext:
    """A TLS server context serving the certificate chain + key in ``chain_path``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(chain_path)
    return context


def write_server_chain(ca: CertificateAuthority, path: Path, common_name: str, *, ips: list[str],
                       dns_names: list[str] = (), key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    path.write_bytes(ca.issue_server_pem(common_name, ips=ips, dns_names=dns_names, key=key))
    path.chmod(0o600)
    return path


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
