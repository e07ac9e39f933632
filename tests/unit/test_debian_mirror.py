"""Which Debian mirror the offline base image is built from: $TORNADO_DEBIAN_MIRROR, else apt's sources."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from click.testing import CliRunner
from tornado_cli.images import image

from tornado_core.adapters.runtimes.images import builder
from tornado_core.adapters.runtimes.images.builder import ImageError, debian_mirror, ensure_base_image
from tornado_core.errors import TornadoError

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "http://mirror.example.test/debian"
NO_ENV: dict[str, str] = {}


def apt(tmp_path: Path, files: dict[str, str]) -> Path:
    """A fake ``/etc/apt`` holding ``files`` (paths relative to it)."""
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    for relative, text in files.items():
        (root / relative).write_text(text)
    return root


# --- one-line sources.list ---------------------------------------------------------------------


def test_one_line_sources_give_the_release_entry_not_comments_sources_or_security(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {"sources.list": (
        "# deb http://commented.example.test/debian bookworm main\n"
        "deb-src http://source.example.test/debian bookworm main\n"
        "deb http://security.example.test/debian-security bookworm-security main\n"
        "deb http://updates.example.test/debian bookworm-updates main\n"
        f"deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} bookworm main\n"
        "deb http://later.example.test/debian bookworm main contrib\n"
    )})  # fmt: skip
    assert debian_mirror(apt_dir, NO_ENV) == MIRROR


def test_list_files_of_sources_list_d_are_read_in_name_order(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {
        "sources.list.d/b-second.list": "deb http://second.example.test/debian trixie main\n",
        "sources.list.d/a-first.list": f"deb {MIRROR} trixie main # the local mirror\n",
        "sources.list.d/z.list.disabled": "deb http://disabled.example.test/debian trixie main\n",
    })  # fmt: skip
    assert debian_mirror(apt_dir, NO_ENV) == MIRROR


def test_an_updates_entry_is_used_when_it_is_the_only_one(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {"sources.list": f"deb {MIRROR} bookworm-updates main\n"})
    assert debian_mirror(apt_dir, NO_ENV) == MIRROR


def test_third_party_and_other_distribution_archives_are_not_taken_for_debian(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {
        "sources.list": "deb http://archive.example.test/ubuntu jammy main universe\n",
        "sources.list.d/a-tools.list": (
            "deb https://tools.example.test/apt tools-bookworm main\n"
            "deb https://engine.example.test/linux/debian bookworm stable\n"
            "deb https://flat.example.test/debian ./\n"
            "deb cdrom:[Debian disc]/ bookworm main\n"
        ),
        "sources.list.d/b-debian.list": f"deb {MIRROR} bookworm main\n",
    })  # fmt: skip
    assert debian_mirror(apt_dir, NO_ENV) == MIRROR


# --- deb822 .sources ---------------------------------------------------------------------------


def test_deb822_sources_give_the_release_uri_not_the_security_archive(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {
        "sources.list.d/debian.sources": (
            "Types: deb-src\n"
            "URIs: http://source.example.test/debian\n"
            "Suites: bookworm\n"
            "Components: main\n"
            "\n"
            "Types: deb\n"
            "URIs: http://security.example.test/debian-security\n"
            "Suites: bookworm-security\n"
            "Components: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            "\n"
            "Types: deb\n"
            "# http://snapshot.example.test/archive/debian/20250520T000000Z\n"
            f"URIs: {MIRROR}\n"
            "Suites: bookworm bookworm-updates\n"
            "Components: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
        "sources.list.d/node.sources": (
            "Types: deb\nURIs: https://node.example.test/node_20.x\nSuites: nodistro\nComponents: main\n"
        ),
    })  # fmt: skip
    assert debian_mirror(apt_dir, NO_ENV) == MIRROR


def test_deb822_disabled_stanzas_are_skipped_and_key_blocks_are_no_trouble(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {
        "sources.list.d/debian.sources": (
            "Enabled: no\nTypes: deb\nURIs: http://off.example.test/debian\n"
            "Suites: trixie\nComponents: main\n"
            "\n"
            "types: deb deb-src\n"
            f"uris: {MIRROR}\n"
            "suites: trixie\n"
            "components: main contrib\n"
            "signed-by:\n"
            " -----BEGIN PGP PUBLIC KEY BLOCK-----\n"
            " .\n"
            " mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w\n"
            " -----END PGP PUBLIC KEY BLOCK-----\n"
        ),
    })  # fmt: skip
    assert debian_mirror(apt_dir, NO_ENV) == MIRROR


def test_the_mirror_may_be_a_local_file_archive(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {
        "sources.list.d/local.sources": (
            "Types: deb\nURIs: file:/srv/debian\nSuites: bookworm\nComponents: main\n"
        ),
    })  # fmt: skip
    assert debian_mirror(apt_dir, NO_ENV) == "file:/srv/debian"


# --- the environment wins, and nothing found is a clear error ----------------------------------


def test_tornado_debian_mirror_wins_over_the_apt_sources(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {"sources.list": "deb http://apt.example.test/debian bookworm main\n"})
    env = {"TORNADO_DEBIAN_MIRROR": MIRROR}
    assert debian_mirror(apt_dir, env) == MIRROR


def test_an_empty_tornado_debian_mirror_counts_as_unset(tmp_path: Path) -> None:
    apt_dir = apt(tmp_path, {"sources.list": f"deb {MIRROR} bookworm main\n"})
    assert debian_mirror(apt_dir, {"TORNADO_DEBIAN_MIRROR": " "}) == MIRROR


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"sources.list": "# deb http://commented.example.test/debian bookworm main\n"},
        {"sources.list": "deb http://security.example.test/debian-security bookworm-security main\n"},
        {"sources.list.d/tools.list": "deb https://tools.example.test/apt tools-bookworm main\n"},
    ],
    ids=["no-sources", "only-comments", "only-security", "only-third-party"],
)
def test_no_debian_archive_asks_for_tornado_debian_mirror_or_mirror(
    tmp_path: Path, files: dict[str, str]
) -> None:
    apt_dir = apt(tmp_path, files)
    with pytest.raises(ImageError) as caught:
        debian_mirror(apt_dir, NO_ENV)
    assert isinstance(caught.value, TornadoError)  # the CLI shows it as a plain error message
    assert "TORNADO_DEBIAN_MIRROR" in str(caught.value)
    assert "--mirror" in str(caught.value)


def test_a_missing_apt_folder_is_the_same_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="TORNADO_DEBIAN_MIRROR"):
        debian_mirror(tmp_path / "no-such-apt", NO_ENV)


# --- the mirror is only asked for when the base is built ---------------------------------------


class FakeImages:
    def __init__(self, present: bool) -> None:
        self.present = present

    def get(self, tag: str) -> object:
        if not self.present:
            raise docker.errors.ImageNotFound(tag)
        return object()

    def load(self, _data: object) -> None:
        self.present = True


class FakeClient:
    def __init__(self, present: bool) -> None:
        self.images = FakeImages(present)


def no_mirror(*_args: Any, **_kwargs: Any) -> str:
    raise ImageError("no Debian mirror: set TORNADO_DEBIAN_MIRROR or pass --mirror")


def test_a_present_base_image_needs_no_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "debian_mirror", no_mirror)
    assert ensure_base_image(FakeClient(present=True), cache_dir=tmp_path) == "present"


def test_a_cached_base_image_is_loaded_without_a_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builder, "debian_mirror", no_mirror)
    (tmp_path / "tornado_python_3.11-bookworm.tar.gz").write_bytes(b"saved image")
    assert ensure_base_image(FakeClient(present=False), cache_dir=tmp_path) == "loaded"


def test_building_the_base_without_a_known_mirror_stops_before_mkrootfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[object] = []
    monkeypatch.setattr(builder, "debian_mirror", no_mirror)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(ImageError, match="TORNADO_DEBIAN_MIRROR"):
        ensure_base_image(FakeClient(present=False), cache_dir=tmp_path)
    assert ran == []


def test_building_the_base_passes_the_resolved_mirror_to_mkrootfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv: list[list[str]] = []

    def run(args: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[str]:
        argv.append(args)
        return subprocess.CompletedProcess(args, 1, "", "debootstrap: cannot reach the mirror")

    monkeypatch.setenv("TORNADO_DEBIAN_MIRROR", MIRROR)
    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(ImageError, match=r"mkrootfs\.sh failed"):
        ensure_base_image(FakeClient(present=False), cache_dir=tmp_path, suite="trixie")
    assert argv[0][-2:] == ["trixie", MIRROR]


# --- the command line and the script ------------------------------------------------------------


def test_build_base_help_names_the_mirror_sources_and_no_url() -> None:
    result = CliRunner().invoke(image, ["build-base", "--help"], terminal_width=200)
    assert result.exit_code == 0
    option = next(line for line in result.output.splitlines() if "--mirror" in line)
    assert "TORNADO_DEBIAN_MIRROR" in option
    assert "apt sources" in option
    assert "://" not in result.output


def test_mkrootfs_without_a_mirror_fails_clearly_and_builds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rootfs.tar"
    script = ROOT / "docker" / "base" / "mkrootfs.sh"
    result = subprocess.run(["bash", str(script), str(out), "bookworm"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "no Debian mirror given" in result.stderr
    assert "TORNADO_DEBIAN_MIRROR" in result.stderr
    assert not out.exists()
