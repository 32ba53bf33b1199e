"""Certificates and keys for a throwaway local control plane, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _new_key_request(key: Path, *args: str | Path) -> None:
    """`openssl req` with a fresh P-256 key written to `key`, plus `args`."""
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"]
    _openssl("req", *new_key, key, *args)


def _signed_cert(
    pki: Path, name: str, subject: str, ca_cert: Path, ca_key: Path, ext: str
) -> tuple[Path, Path]:
    key, csr, cert, extfile = (pki / f"{name}{s}" for s in (".key", ".csr", ".crt", ".ext"))
    extfile.write_text(ext)
    _new_key_request(key, "-new", "-out", csr, "-subj", subject)
    _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "30", "-extfile", extfile)  # fmt: skip
    return cert, key


def create_pki(pki: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """A CA, an API server serving cert for 127.0.0.1 (plus `extra_ips`: with real
    nodes, the bridge address and the `kubernetes` Service IP that pods dial), an admin
    client cert (system:masters) and the ServiceAccount token signing key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = pki / "ca.key", pki / "ca.crt"
    _new_key_request(ca_key, "-x509", "-out", ca_cert, "-days", "30",
                     "-subj", "/CN=ray-operator-devcluster-ca")  # fmt: skip
    serving_cert, serving_key = _signed_cert(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        ca_cert,
        ca_key,
        f"subjectAltName=IP:127.0.0.1,{''.join(f'IP:{ip},' for ip in extra_ips)}"
        "DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\n",
    )
    admin_cert, admin_key = _signed_cert(
        pki,
        "admin",
        "/O=system:masters/CN=admin",
        ca_cert,
        ca_key,
        "extendedKeyUsage=clientAuth\n",
    )
    sa_key, sa_pub = pki / "sa.key", pki / "sa.pub"
    _openssl("genrsa", "-out", sa_key, "2048")
    _openssl("rsa", "-in", sa_key, "-pubout", "-out", sa_pub)
    return Pki(ca_cert, ca_key, serving_cert, serving_key, admin_cert, admin_key, sa_key, sa_pub)


def client_cert(pki: Pki, directory: Path, name: str, subject: str) -> tuple[Path, Path]:
    """A client certificate signed by the cluster CA (e.g. a kubelet's
    `/O=system:nodes/CN=system:node:NAME`); returns (cert, key)."""
    return _signed_cert(
        directory, name, subject, pki.ca_cert, pki.ca_key, "extendedKeyUsage=clientAuth\n"
    )


def serving_cert(pki: Pki, directory: Path, name: str, ips: tuple[str, ...]) -> tuple[Path, Path]:
    """A serving certificate for `ips` signed by the cluster CA (the kubelet's, so the
    API server can verify it for logs and exec)."""
    sans = ",".join(f"IP:{ip}" for ip in ips)
    return _signed_cert(
        directory,
        name,
        f"/CN={name}",
        pki.ca_cert,
        pki.ca_key,
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n",
    )
