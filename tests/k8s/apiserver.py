"""A real Kubernetes API server for the tests: kube-apiserver (scripts/kube_apiserver_bin.py) beside etcd,
both on loopback ports chosen here, a self-signed serving certificate and a static bearer token.

No controller manager, scheduler or kubelet: objects are stored and admitted exactly as a cluster would
(schemas, defaulting, immutability, Pod Security admission), but no ReplicaSet or Pod is ever created
from them and no status changes.
"""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import free_port, require_tool, wait_until
from tests.support.tools import built_binary


def kube_apiserver_binary() -> str:
    return built_binary("kube_apiserver_bin.py")


def _openssl(*args: str, cwd: Path) -> None:
    tool = require_tool("openssl", "apt-get install openssl")
    subprocess.run([tool, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass
class ApiServer:
    kubectl: str
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="apiserver-")))
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    etcd_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.work / "kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        """Environment for kubectl (and `make` recipes that call it) pointing at this server only."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def start(self) -> ApiServer:
        etcd = require_tool("etcd", "apt-get install etcd-server")
        apiserver = kube_apiserver_binary()
        w = self.work
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "serving.key", "-out", "serving.crt",
            cwd=w,
        )  # fmt: skip
        _openssl("genrsa", "-out", "service-account.key", "2048", cwd=w)
        # token,user,uid,"groups": the one client is a cluster admin.
        (w / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        self._spawn(
            "etcd",
            [
                etcd,
                f"--data-dir={w / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
                "--unsafe-no-fsync",
            ],
        )
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2).status_code == 200,
            60,
            interval=0.2,
            what="etcd /health",
        )
        self._spawn(
            "kube-apiserver",
            [
                apiserver,
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={w / 'certs'}",
                f"--tls-cert-file={w / 'serving.crt'}",
                f"--tls-private-key-file={w / 'serving.key'}",
                f"--token-auth-file={w / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={w / 'service-account.key'}",
                f"--service-account-signing-key-file={w / 'service-account.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                # The default plugin set (PodSecurity, ServiceAccount, LimitRanger, ...) is what clusters run.
            ],
        )
        (self.kubeconfig).write_text(
            f"""apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster: {{server: "https://127.0.0.1:{self.port}", certificate-authority: "{w / "serving.crt"}"}}
users:
  - name: admin
    user: {{token: "{self.token}"}}
contexts:
  - name: test
    context: {{cluster: test, user: admin}}
current-context: test
"""
        )

        def ready() -> bool:
            self._check_alive()
            answer = httpx.get(
                f"https://127.0.0.1:{self.port}/readyz",
                headers={"Authorization": f"Bearer {self.token}"},
                verify=ssl.create_default_context(cafile=str(w / "serving.crt")),
                timeout=5,
            )
            return answer.status_code == 200

        wait_until(ready, 180, interval=0.5, what="kube-apiserver /readyz")
        return self

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.work))

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args!r} exited {proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
            for p in sorted(self.work.glob("*.log"))
        )

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl against this server; a failing call (with check) raises with kubectl's stderr."""
        proc = subprocess.run(
            [self.kubectl, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        subprocess.run(["rm", "-rf", str(self.work)], check=False)
