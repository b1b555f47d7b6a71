"""Preprocessing: the one owner of the pixels both training and screening see (numpy in, numpy out; no files).

- :mod:`.frame`: the standard frame (cone mask, grey conversion, crop and letterbox to the standard square);
- :mod:`.clip`: a clip's cone found once on a sample of its frames, then every kept frame standardised;
- :mod:`.crop`: the valve crop, its mapping back onto the frame, noise reduction and normalisation;
- :mod:`.record`: the frozen :class:`Preprocessing` record a model bundle stores and reads back.
"""

from echoavc.preprocess.clip import PreparedClip, prepare_clip, prepare_image
from echoavc.preprocess.crop import (
    averaged_boxes,
    crop_geometry,
    crop_to_image,
    jitter_box,
    normalise,
    prepare_crop,
    subtract_minimum,
    valve_crop,
)
from echoavc.preprocess.frame import StandardFrame, channels_equal, chroma, is_grey, overlay_in_cone
from echoavc.preprocess.record import Preprocessing

__all__ = ["PreparedClip", "Preprocessing", "StandardFrame", "averaged_boxes", "channels_equal", "chroma", "crop_geometry",
           "crop_to_image", "is_grey", "jitter_box", "normalise", "overlay_in_cone", "prepare_clip", "prepare_crop",
           "prepare_image", "subtract_minimum", "valve_crop"]
