from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from echoavc.annotations import ValveBox
from echoavc.cone.transform import StandardTransform


@settings(max_examples=60, deadline=None)
@given(cx=st.integers(0, 300), cy=st.integers(0, 300), cw=st.integers(20, 900), ch=st.integers(20, 900),
       size=st.sampled_from([64, 160, 640]), fx=st.floats(0, 1), fy=st.floats(0, 1), fw=st.floats(0.01, 1),
       fh=st.floats(0.01, 1))
def test_box_round_trips_through_the_transform(cx, cy, cw, ch, size, fx, fy, fw, fh):
    t = StandardTransform.fit(cx, cy, cw, ch, size)
    x1, y1 = cx + fx * cw, cy + fy * ch
    b = ValveBox("k:0", x1, y1, x1 + fw * cw, y1 + fh * ch, "original")
    s = b.to_space("standard", t)
    assert s.space == "standard"
    assert np.allclose(s.to_space("original", t).xyxy, b.xyxy, atol=1e-9)
    assert s.width == pytest.approx(b.width * t.scale)


def test_frame_index_resolves_every_name(ingest, frames):
    k = next(iter(ingest.boxes_std))
    info = frames[k]
    sha, idx = k.split(":")
    for ref in (k, info.image_path, "./" + info.image_path, info.image_path.split("/")[-1],
                info.image_path.split("/")[-1][:-4]):
        assert frames.resolve(ref) == k
    assert frames.resolve(None, sha, idx) == k
    with pytest.raises(KeyError, match="frames"):  # the hash of a two-frame file names two frames
        frames.resolve(sha)
    with pytest.raises(KeyError, match="not in the manifest"):
        frames.resolve(None, sha, 99)
