"""audioclf.archive: hostile tar and zip members are refused by name; good archives extract once."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from audioclf.archive import MARKER, ArchiveError, archive_stem, extract, is_archive, safe_parts


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def make_zip(path: Path, members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


GOOD = [("data/meta/a.csv", b"x,y\n1,2\n"), ("data/audio/1.wav", b"RIFF....")]


@pytest.fixture
def box(tmp_path):
    """A folder whose sibling 'outside' must stay empty whatever the archive says."""
    (tmp_path / "outside").mkdir()
    return tmp_path


def assert_nothing_escaped(box: Path, target: Path) -> None:
    assert list((box / "outside").iterdir()) == []
    assert not target.exists() and not target.with_name(target.name + ".partial").exists()
    assert not (box / "evil.txt").exists()


@pytest.mark.parametrize("hostile,expected", [
    (("../evil.txt", b"boom"), "'../evil.txt'"),
    (("data/../../evil.txt", b"boom"), "'data/../../evil.txt'"),
    (("/tmp/evil-absolute.txt", b"boom"), "'/tmp/evil-absolute.txt'"),
    (link("data/escape", "../../outside"), "symlink pointing outside"),
    (link("data/etc", "/etc/passwd"), "symlink pointing outside"),
    (link("data/hard", "../outside/x", tarfile.LNKTYPE), "hardlink pointing outside"),
])
def test_hostile_tar_member_is_refused_and_named(box, hostile, expected):
    archive = make_tar(box / "bad.tar.gz", GOOD + [hostile, ("data/after.txt", b"later")])
    target = box / "staging" / "bad"
    with pytest.raises(ArchiveError) as info:
        extract(archive, target, progress=False)
    message = str(info.value)
    assert expected in message and "refused member" in message and str(archive) in message
    assert_nothing_escaped(box, target)


def test_tar_device_file_is_refused(box):
    device = tarfile.TarInfo("data/dev")
    device.type = tarfile.CHRTYPE
    archive = make_tar(box / "dev.tar", GOOD + [device], mode="w")
    with pytest.raises(ArchiveError, match="'data/dev'.*special file"):
        extract(archive, box / "t", progress=False)


def test_symlink_chain_escape_is_refused_by_the_data_filter(box):
    # Lexically both links stay inside; on disk 'data/up' is the root, so 'data/up/esc' is its parent.
    archive = make_tar(box / "chain.tar", GOOD + [link("data/up", ".."), link("data/up/esc", ".."),
                                                  ("data/up/esc/evil.txt", b"x")], mode="w")
    with pytest.raises(ArchiveError, match="refused member 'data/up/esc'"):
        extract(archive, box / "staging" / "t", progress=False)
    assert not (box / "evil.txt").exists() and not (box / "staging" / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "data/../../evil.txt", "..\\evil.txt",
                                  "C:/evil.txt"])
def test_hostile_zip_member_is_refused_and_named(box, name):
    archive = make_zip(box / "bad.zip", GOOD + [(name, b"boom")])
    target = box / "staging" / "bad"
    with pytest.raises(ArchiveError) as info:
        extract(archive, target, progress=False)
    assert repr(name) in str(info.value)
    assert_nothing_escaped(box, target)


def test_zip_symlink_pointing_out_is_refused(box):
    archive = make_zip(box / "link.zip", GOOD, symlinks={"data/escape": "../../outside"})
    with pytest.raises(ArchiveError, match="'data/escape'.*symlink pointing outside"):
        extract(archive, box / "t", progress=False)


def test_good_archives_extract_and_a_second_call_is_a_no_op(box):
    for archive in (make_tar(box / "good.tar.gz", GOOD), make_zip(box / "good.zip", GOOD)):
        target = box / "staging" / archive_stem(archive)
        assert extract(archive, target, progress=False) == target
        assert (target / "data" / "meta" / "a.csv").read_bytes() == GOOD[0][1]
        assert (target / MARKER).is_file()
        (target / "data" / "meta" / "a.csv").write_bytes(b"changed")  # a no-op rerun leaves this alone
        extract(archive, target, progress=False)
        assert (target / "data" / "meta" / "a.csv").read_bytes() == b"changed"


def test_interrupted_extraction_starts_afresh(box):
    archive = make_zip(box / "good.zip", GOOD)
    target = box / "t"
    (box / "t.partial" / "junk").mkdir(parents=True)  # what an interrupted run leaves
    extract(archive, target, progress=False)
    assert not (box / "t.partial").exists() and not (target / "junk").exists()
    assert (target / "data" / "audio" / "1.wav").is_file()


def test_macos_forks_in_zips_are_skipped(box):
    archive = make_zip(box / "mac.zip", GOOD + [("__MACOSX/data/._a.csv", b"fork")])
    target = extract(archive, box / "t", progress=False)
    assert not (target / "__MACOSX").exists()


@pytest.mark.parametrize("maker", [make_tar, make_zip])
def test_damaged_archive_is_a_clear_error(box, maker):
    big = [("data/audio/big.wav", bytes(range(256)) * 4000)]
    archive = maker(box / ("cut.tar.gz" if maker is make_tar else "cut.zip"), GOOD + big)
    whole = archive.read_bytes()
    if maker is make_tar:  # cut short
        archive.write_bytes(whole[: len(whole) * 2 // 3])
    else:  # bytes flipped inside a member: CRC error
        middle = len(whole) // 2
        archive.write_bytes(whole[:middle] + bytes(b ^ 0xFF for b in whole[middle:middle + 16]) + whole[middle + 16:])
    target = box / "t"
    with pytest.raises(ArchiveError, match="damaged.*delete it and run again"):
        extract(archive, target, progress=False)
    assert not target.exists() and not (box / "t.partial").exists()


def test_not_an_archive(box):
    path = box / "notes.zip"
    path.write_text("plain text")
    assert not is_archive(path)
    with pytest.raises(ArchiveError, match="neither a zip nor a tar"):
        extract(path, box / "t", progress=False)


def test_names():
    assert archive_stem(Path("UrbanSound8K.tar.gz")) == "UrbanSound8K"
    assert archive_stem(Path("ESC-50-master.zip")) == "ESC-50-master"
    assert safe_parts("./a/b.wav") == ("a", "b.wav")
    assert safe_parts("a/../../b") is None and safe_parts("/a") is None
