"""Headers first: M-mode and spectral Doppler are never screened as 2D views; a split screen is screened from its
2D region; colour over the valve keeps a frame out (the colour-Doppler rule)."""

import io

import numpy as np
import pydicom

from echoavc.dicom.read import open_dicom, tissue_regions
from echoavc.preprocess.clip import prepare_clip
from echoavc.screening.core import FrameResult
from echoavc.settings import IngestSettings
from echoavc.views.headers import colour_share, header_kind, valve_area_grey
from echoavc.views.screening import apply_colour_rule

from us_files import m_mode_strip, region, sector_frames, us_file


def _ds(regions):
    return pydicom.dcmread(io.BytesIO(us_file(np.zeros((1, 8, 8), np.uint8), regions)))


def test_region_codes_decide_the_kind():
    assert header_kind(None).kind == "unknown"  # an exported image: the header cannot decide
    assert header_kind(_ds(None)).kind == "unknown"
    assert header_kind(_ds([region(0, 0, 7, 7, 1, 1)])) == header_kind(_ds([region(0, 0, 7, 7, 1, 1)]))
    two_d = header_kind(_ds([region(0, 0, 7, 7, 1, 1)]))
    assert (two_d.kind, two_d.colour_flow, two_d.split, two_d.screened) == ("2d", False, False, True)
    assert header_kind(_ds([region(0, 0, 7, 7, 2, 1)])).kind == "m-mode"
    assert header_kind(_ds([region(0, 0, 7, 7, 3, 3)])).kind == "spectral doppler"  # PW
    assert header_kind(_ds([region(0, 0, 7, 7, 3, 4)])).kind == "spectral doppler"  # CW
    # an M-mode trace beside a spectral strip is still not a 2D view; an ECG waveform region decides nothing
    assert not header_kind(_ds([region(0, 0, 7, 3, 2, 1), region(0, 4, 7, 7, 4, 10)])).screened
    assert header_kind(_ds([region(0, 0, 7, 7, 4, 10)])).kind == "unknown"
    colour = header_kind(_ds([region(0, 0, 7, 7, 1, 2)]))
    assert colour.kind == "2d" and colour.colour_flow
    split = header_kind(_ds([region(0, 0, 7, 3, 1, 1), region(0, 4, 7, 7, 2, 1)]))
    assert split.kind == "2d" and split.split and split.screened


def test_a_split_screen_is_screened_from_its_2d_region():
    """2D sector on top, an M-mode strip below: the file is screened, and the cone lies in the 2D region."""
    n, w = 4, 400
    top = sector_frames((300, w), n)
    frames = np.concatenate([top, m_mode_strip(200, w, n)], axis=1)  # 500 x 400
    regions = [region(0, 0, w - 1, 299, 1, 1), region(0, 300, w - 1, 499, 2, 1)]
    clip = open_dicom(us_file(frames, regions), "split.dcm")
    assert header_kind(clip.dataset).screened
    assert tissue_regions(clip.dataset) == [(0, 0, w - 1, 299)]
    prep = prepare_clip(clip, IngestSettings())
    x0, y0, x1, y1 = _bbox(prep.frame.mask)
    assert y1 <= 300 and (y1 - y0) > 200, (x0, y0, x1, y1)  # the whole sector, nothing of the strip
    std = [prep.standard(f) for _, f in prep.frames()]
    assert len(std) == n and std[0].shape[:2] == (640, 640)


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_the_colour_rule_screens_only_a_grey_valve_area():
    grey = np.full((640, 640), 90, np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    box = [200.0, 200.0, 300.0, 300.0]
    assert colour_share(grey, box) == 0.0 and valve_area_grey(rgb, box)
    flow = rgb.copy()
    flow[210:260, 210:290] = (200, 30, 30)  # a red jet over 40% of the box
    assert colour_share(flow, box) > 0.3 and not valve_area_grey(flow, box)
    aside = rgb.copy()
    aside[400:600, 400:600] = (30, 30, 220)  # colour beside the valve, not over it: still screened
    assert valve_area_grey(aside, box)
    frames = [FrameResult("E", "s", i, "decided", 0.9, box, 0.7, "calcified") for i in range(3)]
    apply_colour_rule(frames, [grey, flow, aside])
    assert [f.status for f in frames] == ["decided", "colour_doppler", "decided"]
    assert frames[1].decision == "" and frames[1].probability is None and frames[1].valve_box == box
