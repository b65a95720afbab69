"""find_text sees a text in plain bytes and inside zstd frames (LZF in RDB files: see
test_log_retention, on a real Redis), and reports nothing where the text is not."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.text_scan import find_text

NEEDLE = "okapi-violet-7731"


def zstd(data: bytes) -> bytes:
    return pa.compress(data, codec="zstd", asbytes=True)


@given(
    before=st.binary(max_size=200),
    after=st.binary(max_size=200),
    filler=st.text(max_size=300),
    repeat=st.integers(min_value=1, max_value=20),
)
def test_a_needle_inside_a_zstd_frame_among_other_bytes_is_found(
    tmp_path_factory: pytest.TempPathFactory, before: bytes, after: bytes, filler: str, repeat: int
) -> None:
    # Repeated text compresses to back references, so the needle's bytes are not in the file.
    content = ((filler + NEEDLE) * repeat).encode()
    data = before + zstd(content) + after
    path = tmp_path_factory.mktemp("scan") / "file.bin"
    path.write_bytes(data)

    encodings = {hit.encoding for hit in find_text(path, [NEEDLE])}

    assert "zstd" in encodings
    assert ("plain" in encodings) == (NEEDLE.encode() in data)


def test_frames_of_several_blocks_are_read_to_their_end(tmp_path: Path) -> None:
    noise = os.urandom(300_000)  # incompressible: raw blocks of 128 KiB each
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" + zstd(noise + NEEDLE.encode()) + zstd(b"another frame"))

    hits = find_text(path, [NEEDLE, "another frame"])

    # Raw blocks hold the bytes as they are, so the plain scan finds them too.
    assert {(hit.needle, hit.encoding) for hit in hits} >= {
        ("another frame", "zstd"),
        (NEEDLE, "zstd"),
    }


def test_a_directory_is_scanned_file_by_file_and_clean_files_report_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "plain.log").write_bytes(b"..." + NEEDLE.encode() + b"...")
    (tmp_path / "a" / "clean.bin").write_bytes(zstd(b"nothing here" * 50) + b"\x28\xb5\x2f\xfd")
    (tmp_path / "link").symlink_to(tmp_path / "a" / "b" / "plain.log")

    hits = find_text(tmp_path, [NEEDLE])

    assert [(hit.path.name, hit.encoding) for hit in hits] == [("plain.log", "plain")]
