"""This machine's apt sources, read to find the Debian archive the base image is debootstrapped from.

Both formats apt reads are understood, in apt's order: ``sources.list``, then the files of
``sources.list.d`` by name, one-line ``*.list`` (``deb [options] URI SUITE COMPONENT...``) and
deb822 ``*.sources`` (stanzas with ``Types``, ``URIs``, ``Suites``, ``Components``...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

#: URI schemes debootstrap and mmdebstrap can fetch a Debian archive from.
SCHEMES = frozenset({"http", "https", "file"})
#: Suites of the main archive that are not a release itself (their URI is the main archive's).
SECONDARY_SUITES = ("-updates", "-backports", "-backports-sloppy", "-proposed-updates")
#: Debian's archive signing keyring (``Signed-By`` of Debian's own entries).
DEBIAN_KEYRING = "debian-archive-keyring"

_OPTIONS = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry: a URI and one suite of it.

    Attributes:
        uri: Where the archive is, e.g. ``http://mirror.example.test/debian``.
        suite: Release or suite, e.g. ``bookworm`` or ``bookworm-updates``.
        components: Its components, e.g. ``("main",)``.
        signed_by: The ``Signed-By`` / ``signed-by=`` value ("" if none).
    """

    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str = ""

    @property
    def is_security(self) -> bool:
        """The security archive: a separate archive that holds only fixes."""
        return "security" in self.uri.lower() or self.suite.endswith("-security")

    @property
    def is_release(self) -> bool:
        """A release itself (``bookworm``, ``stable``), not its ``-updates``/``-backports``."""
        return not self.suite.endswith(SECONDARY_SUITES)

    @property
    def looks_like_debian(self) -> bool:
        """Debian's archive layout: component ``main`` and Debian's key or a ``debian`` path segment.

        A fetchable URI (http, https, file) and a suite (not a flat ``./`` repository) are required.
        Third-party repositories (``/linux/debian`` with component ``stable``, ``/apt``, ``/php``...)
        and other distributions' archives (``/ubuntu``) are not taken for Debian's.
        """
        parts = urlsplit(self.uri)
        if parts.scheme not in SCHEMES or not self.suite or self.suite.endswith("/"):
            return False
        debian_path = "debian" in parts.path.lower().split("/")
        return "main" in self.components and (debian_path or DEBIAN_KEYRING in self.signed_by)


def debian_archive(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The first Debian archive URI in the apt sources under ``apt_dir``, or ``None``.

    Entries of a release itself win over ``-updates``/``-backports`` ones; the security archive and
    ``deb-src``, disabled and commented-out entries are never taken.

    Args:
        apt_dir: The apt configuration folder (``/etc/apt``).

    Returns:
        The archive's URI as written (e.g. ``http://mirror.example.test/debian``), or ``None``.
    """
    candidates = [s for s in apt_sources(apt_dir) if s.looks_like_debian and not s.is_security]
    best = min(candidates, key=lambda s: not s.is_release, default=None)  # the first of the best
    return best.uri if best else None


def apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every ``deb`` entry of ``apt_dir``'s sources, in apt's order (unreadable files are skipped).

    Args:
        apt_dir: The apt configuration folder (``/etc/apt``).

    Returns:
        One entry per URI and suite.
    """
    parts = apt_dir / "sources.list.d"
    files = [apt_dir / "sources.list"]
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    found: list[AptSource] = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found += parse_deb822(text) if path.suffix == ".sources" else parse_one_line(text)
    return found


def parse_one_line(text: str) -> list[AptSource]:
    """The ``deb`` entries of a one-line sources file (``deb [options] URI SUITE COMPONENT...``).

    Args:
        text: The file's content.

    Returns:
        Its ``deb`` entries (``deb-src`` and comments left out).
    """
    found: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        options = _OPTIONS.search(line)
        if options:
            line = line[: options.start()] + " " + line[options.end() :]
        words = line.split()
        if len(words) < 3 or words[0] != "deb":
            continue
        signed_by = _option(options.group(1) if options else "", "signed-by")
        found.append(AptSource(words[1], words[2], tuple(words[3:]), signed_by))
    return found


def parse_deb822(text: str) -> list[AptSource]:
    """The ``deb`` entries of a deb822 ``.sources`` file (one per URI and suite of each stanza).

    Args:
        text: The file's content.

    Returns:
        Its ``deb`` entries (``deb-src``-only and ``Enabled: no`` stanzas left out).
    """
    found: list[AptSource] = []
    for stanza in _stanzas(text.splitlines()):
        if "deb" not in stanza.get("types", "").split() or stanza.get("enabled", "yes").lower() == "no":
            continue
        components = tuple(stanza.get("components", "").split())
        signed_by = stanza.get("signed-by", "")
        found += [
            AptSource(uri=uri, suite=suite, components=components, signed_by=signed_by)
            for uri in stanza.get("uris", "").split()
            for suite in stanza.get("suites", "").split()
        ]
    return found


def _stanzas(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Fields (lower-cased names) of each blank-line-separated stanza; continuation lines joined."""
    fields: dict[str, str] = {}
    name = ""
    for line in lines:
        if not line.strip():
            if fields:
                yield fields
            fields, name = {}, ""
        elif line.startswith("#"):
            continue
        elif line[0] in " \t":
            if name:
                fields[name] += "\n" + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            fields[name] = value.strip()
    if fields:
        yield fields


def _option(options: str, key: str) -> str:
    """The value of ``key=value`` in a one-line entry's ``[...]`` options ("" if absent)."""
    for word in options.split():
        name, _, value = word.partition("=")
        if name.lower() == key:
            return value
    return ""
