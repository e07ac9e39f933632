"""The deployment zip of a task version's Lambda function, built offline from wheels or installed packages.

Lambda's Python runtime imports the function's code from the root of a zip. Tornado builds it
from a folder that already holds the code, so no package index is needed at deploy time:

* a **wheelhouse**: ``*.whl`` files (in the folder, or in its ``wheels/`` and ``deps/`` as
  ``tornado image build`` makes them). Each wheel is installed into the zip's root the way pip
  would (``.data/purelib`` and ``.data/platlib`` too; scripts and headers are left out), its
  ``.dist-info`` kept, so the task's ``tornado.tasks`` entry point is found;
* or **installed packages**: a ``pip install --target DIR`` folder, zipped as it is.

The wheels must run on Lambda's ``python3.11`` (pure Python, ``cp311``/``abi3``, ``manylinux`` for
the function's architecture); anything else is refused by name before anything is uploaded. The
zip is reproducible (sorted entries, fixed dates), so an unchanged folder gives the same
``CodeSha256`` and no code update.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tornado_core.errors import RuntimeFailure

#: The module Lambda calls (``tornado_core.worker.lambda_entry.handler``), as a path in the zip.
HANDLER_FILE = "tornado_core/worker/lambda_entry.py"
#: Lambda's limit on a function's unzipped code.
MAX_UNZIPPED_BYTES = 262_144_000
#: Lambda's Python: 3.11.
PYTHON_MINOR = 11
#: Never copied into the zip: caches anywhere, console scripts at the top (``pip install --target``).
CACHES = "__pycache__"
SCRIPTS = "bin"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SO_TAG = re.compile(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$")


class PackagingError(RuntimeFailure):
    """The folder cannot become a Lambda deployment zip (nothing was uploaded)."""


@dataclass(frozen=True)
class LambdaPackage:
    """A built deployment zip.

    Attributes:
        data: The zip's bytes.
        sha256: Base64 SHA-256 of the bytes (what Lambda reports as ``CodeSha256``).
        unzipped_bytes: Size of its files once unzipped.
        files: How many files it holds.
    """

    data: bytes
    sha256: str
    unzipped_bytes: int
    files: int

    @property
    def hex_digest(self) -> str:
        """The SHA-256 in hex (the object key of the uploaded zip)."""
        return base64.b64decode(self.sha256).hex()


def build_package(source: Path, *, architecture: str = "x86_64") -> LambdaPackage:
    """Build the deployment zip of the code in ``source``.

    Args:
        source: A folder of wheels (or with ``wheels/`` and ``deps/``), or of installed packages.
        architecture: The function's (``x86_64`` or ``arm64``).

    Raises:
        PackagingError: No such folder, a wheel or extension for another platform, no
            tornado-core in it, or more than Lambda's 250 MB unzipped.
    """
    if not source.is_dir():
        raise PackagingError(
            f"{source} is not a folder (give the version's wheelhouse or installed packages)"
        )
    machine = "aarch64" if architecture == "arm64" else architecture
    wheels = wheels_in(source)
    files = dict(_from_wheels(wheels, machine) if wheels else _from_folder(source, machine))
    if HANDLER_FILE not in files:
        raise PackagingError(
            f"{source} holds no tornado-core ({HANDLER_FILE}): add its wheel, or Lambda cannot import "
            "the handler tornado_core.worker.lambda_entry.handler"
        )
    size = sum(len(data) for data in files.values())
    if size > MAX_UNZIPPED_BYTES:
        raise PackagingError(
            f"{source} unzips to {size / 1e6:.0f} MB, above Lambda's 250 MB: deploy a container image "
            "instead (--image)"
        )
    return _zipped(files)


def wheels_in(source: Path) -> list[Path]:
    """The wheels of a wheelhouse folder (itself, ``wheels/``, ``deps/``), sorted by name."""
    found = [p for folder in (source, source / "wheels", source / "deps") for p in folder.glob("*.whl")]
    return sorted(found, key=lambda path: path.name)


def runs_on_lambda(wheel_name: str, machine: str = "x86_64") -> bool:
    """Whether a wheel (by its file name's tags) installs on Lambda's CPython 3.11 on ``machine``."""
    parts = wheel_name.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return False
    pythons, abis, platforms = (tag.split(".") for tag in parts[-3:])
    python_ok = any(_python_ok(tag) for tag in pythons)
    abi_ok = any(abi in ("none", "abi3", f"cp3{PYTHON_MINOR}") for abi in abis)
    platform_ok = any(p == "any" or (p.startswith("manylinux") and p.endswith(machine)) for p in platforms)
    return python_ok and abi_ok and platform_ok


def _python_ok(tag: str) -> bool:
    match = re.fullmatch(r"(?:py|cp)3(\d*)", tag)
    return match is not None and (not match.group(1) or int(match.group(1)) <= PYTHON_MINOR)


def _from_wheels(wheels: list[Path], machine: str) -> Iterator[tuple[str, bytes]]:
    refused = [wheel.name for wheel in wheels if not runs_on_lambda(wheel.name, machine)]
    if refused:
        raise PackagingError(
            f"not for Lambda's python3.11 on {machine}: {', '.join(refused)} (build them with `pip wheel "
            f"--platform manylinux2014_{machine} --python-version 3.11 --only-binary=:all:`)"
        )
    seen: set[str] = set()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                target = _installed_path(info.filename)
                if target is None or info.is_dir() or target in seen:
                    continue
                seen.add(target)
                yield target, archive.read(info)


def _installed_path(name: str) -> str | None:
    """Where a wheel member lands in site-packages (``None``: scripts, headers, data, caches)."""
    parts = name.split("/")
    if parts[0].endswith(".data"):
        if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
            return None
        parts = parts[2:]
    if CACHES in parts or name.endswith(".pyc"):
        return None
    return "/".join(parts)


def _from_folder(source: Path, machine: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        skipped = CACHES in relative.parts or relative.parts[0] == SCRIPTS or path.suffix == ".pyc"
        if skipped or not path.is_file():
            continue
        _check_extension(relative.as_posix(), machine)
        yield relative.as_posix(), path.read_bytes()


def _check_extension(name: str, machine: str) -> None:
    tag = _SO_TAG.search(name)
    foreign = "darwin" in name or name.endswith((".dylib", ".pyd"))
    if foreign or (tag is not None and (tag.group(1) != f"3{PYTHON_MINOR}" or tag.group(2) != machine)):
        raise PackagingError(f"{name} is not built for Lambda's python3.11 on {machine} (Linux)")


def _zipped(files: dict[str, bytes]) -> LambdaPackage:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    data = buffer.getvalue()
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return LambdaPackage(
        data=data, sha256=digest, unzipped_bytes=sum(map(len, files.values())), files=len(files)
    )
