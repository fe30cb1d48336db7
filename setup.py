"""The wheel carries the web panel: the build copies the top-level web/ folder (templates, CSS,
JS) into contactd/web/bundle and compiles each web/locale/*/LC_MESSAGES/*.po into a .mo, so
`pip install .` needs neither Node nor a source checkout at run time. All other metadata is in
pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


class BuildWithWebAssets(build_py):
    def run(self) -> None:
        super().run()
        source = ROOT / "web"
        target = Path(self.build_lib) / "contactd" / "web" / "bundle"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.po", "*.pot"))
        for po in source.glob("locale/*/LC_MESSAGES/*.po"):
            compile_catalogue(po, target / po.relative_to(source).with_suffix(".mo"))
        # SIP.js for the browser phone: from the npm registry, integrity-checked, not committed.
        vendor_module().install(target / "static" / "vendor")


def vendor_module():  # type: ignore[no-untyped-def]
    # By path: importing the contactd package would need its dependencies at build time.
    spec = importlib.util.spec_from_file_location(
        "contactd_vendor", ROOT / "contactd" / "web" / "vendor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_catalogue(po: Path, mo: Path) -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as handle:
        catalog = read_po(handle)
    mo.parent.mkdir(parents=True, exist_ok=True)
    with mo.open("wb") as handle:
        write_mo(handle, catalog)


setup(cmdclass={"build_py": BuildWithWebAssets})
