"""A key inside the output folder is refused before the key is made: a refused ingest leaves no key behind."""

from __future__ import annotations

import pytest

from testkit import shipped_file
from echoavc.errors import EchoAVCError
from echoavc.ingest import ingest


@pytest.mark.parametrize("where", ["k.key", "keys/k.key"])
def test_a_key_inside_the_output_folder_is_refused_and_never_created(tmp_path, where):
    out = tmp_path / "out"
    key = out / where
    with pytest.raises(EchoAVCError, match="outside the output folder"):
        ingest([shipped_file("US1_UNCR.dcm")], out, key, progress=False)
    assert not key.exists() and not key.parent.exists() and not out.exists()
