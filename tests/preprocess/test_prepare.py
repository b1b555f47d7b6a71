"""A clip prepared for standard frames (echoavc.preprocess.prepare_image / prepare_clip)."""

import numpy as np
import pytest

from echoavc.errors import EchoAVCError, NoConeError
from echoavc.preprocess import prepare_image
from echoavc.settings import IngestSettings


def test_no_field_is_its_own_error_kind_naming_the_file():
    # screening turns exactly this kind into 'no_cone' frames; any other error fails the file
    with pytest.raises(NoConeError) as got:
        prepare_image(np.zeros((200, 300), np.uint8), IngestSettings(), "exam/blank.png")
    assert got.value.path == "exam/blank.png" and "no ultrasound cone" in got.value.reason
    assert isinstance(got.value, EchoAVCError)


def test_an_image_is_a_clip_of_one_standard_frame():
    img = np.zeros((300, 400), np.uint8)
    img[40:260, 100:300] = 120  # a rectangular field
    prep = prepare_image(img, IngestSettings(size=128), "x.png")
    assert prep.kept == [0] and prep.frame.grey
    (index, frame), = list(prep.frames())
    std = prep.standard(frame)
    assert index == 0 and std.shape == (128, 128) and std.max() == 120
    assert prep.standard_outline().shape[1] == 2
