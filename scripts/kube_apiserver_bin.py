#!/usr/bin/env python3
"""Print the path of a `kube-apiserver` binary at the pinned Kubernetes release (stdlib only).

tests/k8s/test_apiserver.py applies every overlay to this real API server (beside etcd, no kubelet).
Sources, in order:
  1. KUBE_APISERVER_BIN, if it reports the pinned version;
  2. the cached build .cache/kube-apiserver/<version>/kube-apiserver;
  3. `go build` of k8s.io/kubernetes/cmd/kube-apiserver in a throwaway wrapper module. k8s.io/kubernetes
     points its k8s.io/* staging modules at ./staging (not in the module zip), so the wrapper replaces
     each with its published release (v0.<minor>.<patch>), as every project that imports it does.
Otherwise it exits 3 with one line saying what to install. `--version` prints the pinned version only.

Cold, the build downloads the module graph and compiles for many minutes (figures in
deploy/k8s/README.md); a warm call only checks the cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from pinned_binary import Unavailable, resolve_pinned, run

ROOT = Path(__file__).resolve().parent.parent
# Same minor as the kubectl the tests use (kubectl supports one minor of skew either way).
VERSION = "1.32.13"
CACHE = ROOT / ".cache" / "kube-apiserver"
MODULE = "k8s.io/kubernetes"
STAGING = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.M)


def go_build(version: str, target: Path) -> None:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if not go:
        raise Unavailable("go not found")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    log: list[str] = []
    major, minor, patch = version.split(".")
    with tempfile.TemporaryDirectory(prefix="kube-apiserver-build-") as tmp:
        work = Path(tmp)
        run([go, "mod", "init", "kube-apiserver-build"], work, env, log)
        info = json.loads(run([go, "mod", "download", "-json", f"{MODULE}@v{version}"], work, env, log))
        staging = STAGING.findall(Path(info["GoMod"]).read_text())
        if not staging:
            raise Unavailable(f"{MODULE} v{version}: no staging replaces in its go.mod")
        go_mod = work / "go.mod"
        go_mod.write_text(
            go_mod.read_text()
            + f"\nrequire {MODULE} v{version}\n"
            + "".join(f"\nreplace {m} => {m} v0.{minor}.{patch}" for m in staging)
            + "\n"
        )
        (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{MODULE}/cmd/kube-apiserver"\n')
        run([go, "mod", "tidy"], work, env, log)
        # What the release build stamps: `--version`, discovery and the kubectl skew check read it.
        pkg = "k8s.io/component-base/version"
        stamp = f"-X {pkg}.gitVersion=v{version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"
        stamp += f" -X {pkg}.gitTreeState=clean -X {pkg}.gitCommit={info.get('Origin', {}).get('Hash', '')}"
        partial = target.with_suffix(".partial")
        main = f"{MODULE}/cmd/kube-apiserver"
        run(
            [go, "build", "-trimpath", "-ldflags", f"-s -w {stamp}", "-o", str(partial), main],
            work,
            env,
            log,
        )
        (target.parent / "build.log").write_text("\n".join(log))
        partial.replace(target)


def resolve(version: str = VERSION) -> Path:
    target = CACHE / version / "kube-apiserver"
    return resolve_pinned("KUBE_APISERVER_BIN", target, version, (go_build,), Path(__file__).name, r"v(\d+\.\d+\.\d+)")


def main(argv: list[str]) -> int:
    try:
        if argv[1:] == ["--version"]:
            print(VERSION)
            return 0
        print(resolve())
    except Unavailable as err:
        print(f"kube_apiserver_bin: no kube-apiserver: install Go 1.23+ (it builds {MODULE}) ({err})", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
