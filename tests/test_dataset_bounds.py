"""An evaluation dataset is bounded before it is inflated: a zip bomb or an array header that
declares more than its member holds is refused by our check, not by running out of memory
(issue 9, point 3, the dataset part)."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from conftest import Repo, npz_bytes, sha256_hex
from modelgit.errors import InvalidError
from modelgit.evaluate import MAX_DATASET_BYTES, load_dataset

CS = "registry/models/calling_score.yaml"


def _declaring(data: bytes, member: str, size: int) -> bytes:
    """``data`` (a zip) with the central directory's uncompressed size of ``member`` set to
    ``size``: what a zip bomb's directory says, without building gigabytes here."""
    blob = bytearray(data)
    name = member.encode()
    at = 0
    while (at := blob.find(b"PK\x01\x02", at)) >= 0:
        name_len = struct.unpack_from("<H", blob, at + 28)[0]
        if bytes(blob[at + 46: at + 46 + name_len]) == name:
            struct.pack_into("<I", blob, at + 24, size)
            return bytes(blob)
        at += 4
    raise AssertionError(f"{member} not in the archive")


def _lying_header() -> bytes:
    """An .npz whose X.npy header declares 10^12 float64 values but holds two."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    member.write(np.zeros(2).tobytes())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("X.npy", member.getvalue())
        y = io.BytesIO()
        np.save(y, np.zeros(2))
        archive.writestr("y.npy", y.getvalue())
    return out.getvalue()


def test_a_dataset_over_the_limit_is_refused_before_it_is_inflated(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = np.zeros((1000, 10)), np.zeros(1000)
    data = npz_bytes(X=x, y=y)
    assert load_dataset(data, "d.npz", "regression")[0].shape == (1000, 10)
    limit = x.nbytes // 2  # X alone (80,000 bytes of values) is over it
    monkeypatch.setenv("MODELGIT_MAX_DATASET_BYTES", str(limit))
    with pytest.raises(InvalidError, match=rf"over the limit of {limit:,}"):
        load_dataset(data, "d.npz", "regression")
    monkeypatch.delenv("MODELGIT_MAX_DATASET_BYTES")
    bomb = _declaring(data, "X.npy", 0xF000_0000)  # ~4 GB declared
    assert MAX_DATASET_BYTES < 0xF000_0000
    with pytest.raises(InvalidError, match="declare 4,026,53"):
        load_dataset(bomb, "d.npz", "regression")


def test_an_array_header_that_declares_more_than_its_member_holds_is_refused() -> None:
    with pytest.raises(InvalidError, match=r"array 'X' declares shape \(1000000000000,\) \(8,000,000,000,000 "
                                           r"bytes\) but its member holds"):
        load_dataset(_lying_header(), "d.npz", "regression")


def test_eval_of_a_committed_bomb_says_so(example_repo: Repo, cli) -> None:
    r = example_repo
    bomb = _lying_header()
    r.write("registry/datasets/bomb.npz", bomb)
    text = r.read(CS)
    start = text.index("  dataset: {")
    end = text.index("\n", start)
    r.write(CS, text[:start] + f"  dataset: {{path: registry/datasets/bomb.npz, sha256: {sha256_hex(bomb)}}}"
            + text[end:])
    r.commit("a crafted dataset")
    code, _, err = cli("-C", str(r.root), "eval", "calling_score", "v1.0-hybrid")
    assert code == 1 and "Traceback" not in err
    assert "error: dataset registry/datasets/bomb.npz: array 'X' declares shape (1000000000000,)" in err
