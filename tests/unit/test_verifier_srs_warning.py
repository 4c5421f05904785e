"""A dev SRS is announced loudly once per process and file, not on every witness or proof."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from verifier.srs import DEV_SRS_WARNING, SrsSource, resolve


def test_devSrs_warnsOncePerFile_notOnEveryUse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "srs"
    folder.mkdir()
    for k in (5, 6):  # present already: nothing is generated
        (folder / f"dev-k{k}.srs").write_bytes(b"not a real srs, only its bytes are hashed")
    with caplog.at_level(logging.WARNING, logger="verifier.srs"):
        for _ in range(3):
            resolve(SrsSource.dev(), 5, tmp_path)
        resolve(SrsSource.dev(), 6, tmp_path)
    warnings = [r for r in caplog.records if r.getMessage() == DEV_SRS_WARNING]
    assert len(warnings) == 2  # one per file
