"""Third-party browser libraries, fetched from the npm registry by name and version with the
registry's integrity hash checked, never committed (DESIGN.md §9).

The wheel's build step (setup.py) puts them into contactd/web/bundle/static/vendor/; a source
checkout uses the cache that `python -m contactd.web.vendor` (scripts/install-test-deps, the
dev install) fills: $CONTACTD_CACHE or /var/cache/contactd, folder <name>-<version>. The panel
serves them at /static/vendor/<name>/...

SIP.js ships lib/ as plain ES modules with relative imports: the browser loads
/static/vendor/sip.js/index.js with <script type="module">, no bundler.

This runs at build/install time only, never in the daemon (it blocks).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REGISTRY: Final = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity (sha512-<base64>)
    subdir: str  # what the panel serves from the tarball's package/ folder

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name}-{self.version}.tgz"

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.version}"


PACKAGES: Final = (
    Package(
        "sip.js",
        "0.21.2",
        "sha512-tSqTcIgrOd2IhP/rd70JablvAp+fSfLSxO4hGNY6LkWRY1SKygTO7OtJEV/BQb8oIxtMRx0LE7nUF2MaqGbFzA==",
        "lib",
    ),
)


def cache_dir() -> Path:
    return Path(os.environ.get("CONTACTD_CACHE", "/var/cache/contactd"))


def check_integrity(data: bytes, integrity: str) -> None:
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise ValueError(f"unsupported integrity algorithm {algo!r}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != expected:
        raise ValueError(f"integrity mismatch: expected {integrity}, got sha512-{got}")


def fetch(package: Package, target: Path) -> Path:
    """Download, check and unpack package/<subdir> into target/<name>-<version>/ (once)."""
    dest = target / package.folder
    marker = dest / ".integrity"
    if marker.is_file() and marker.read_text() == package.integrity:
        return dest
    with urllib.request.urlopen(package.tarball, timeout=60) as reply:
        data = reply.read()
    check_integrity(data, package.integrity)
    tmp = target / f".{package.folder}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    prefix = f"package/{package.subdir}/"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            relative = Path(member.name[len(prefix) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise ValueError(f"unsafe path in {package.tarball}: {member.name}")
            out = tmp / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            out.write_bytes(source.read())
    (tmp / ".integrity").write_text(package.integrity)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def install(static_vendor: Path, cache: Path | None = None) -> None:
    """Copy every package (fetched into the cache if needed) to static_vendor/<name>/."""
    root = cache or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        source = fetch(package, root)
        dest = static_vendor / package.name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".integrity", "*.d.ts"))


def find(name: str, relative: str) -> Path | None:
    """A vendored file in a source checkout's cache (the panel's fallback to the bundle)."""
    for package in PACKAGES:
        if package.name == name:
            path = (cache_dir() / package.folder / relative).resolve()
            root = (cache_dir() / package.folder).resolve()
            if path.is_relative_to(root) and path.is_file():
                return path
    return None


def main() -> int:
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        print(f"{package.name}@{package.version}: {fetch(package, root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
