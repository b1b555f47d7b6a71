"""What the DICOM header decides before any model looks: M-mode and spectral Doppler are not 2D views.

The Sequence of Ultrasound Regions (C.8.5.5) says what each rectangle of the screen holds: Region Spatial Format
1 = 2D, 2 = M-mode, 3 = spectral (PW/CW Doppler), 4 = waveform (ECG, Doppler traces), 5 = graphics; Region Data
Type 1 = tissue, 2 = colour flow, 3/4 = PW/CW spectral Doppler. The rules:

- a file with a 2D region is screened from it, whatever else is on the screen (a split screen of 2D over an
  M-mode or Doppler strip: the cone finder searches only the 2D region, ``echoavc.dicom.read.tissue_regions``);
- a file whose regions hold no 2D region but an M-mode one is ``m-mode``, one with a spectral region (or a
  PW/CW data type) is ``spectral doppler``: never screened as a 2D view, and listed with that reason;
- a 2D region of data type colour flow marks a colour-Doppler clip: screened, but only frames whose valve area is
  grey (:func:`valve_area_grey`), because colour over the valve hides the leaflets the classifier reads;
- no regions (or only traces and graphics): the header does not decide; the image and the view model do.

numpy/pydicom in, plain values out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HeaderKind", "header_kind", "valve_area_grey", "colour_share", "COLOUR_CHROMA", "COLOUR_MAX_SHARE"]

SPATIAL_2D, SPATIAL_M_MODE, SPATIAL_SPECTRAL = 1, 2, 3
DATA_TISSUE, DATA_COLOUR_FLOW, DATA_PW, DATA_CW = 1, 2, 3, 4

#: a pixel is colour (flow), not grey, when its channels differ by more than this (lossy YBR leaves a few levels,
#: the same bound as the ingest's colour-marks check)
COLOUR_CHROMA = 60
#: the colour-Doppler rule: a frame is screened only when at most this share of its valve box is colour
COLOUR_MAX_SHARE = 0.05


@dataclass(frozen=True)
class HeaderKind:
    """What the header says about a file: ``kind`` is ``2d``, ``m-mode``, ``spectral doppler`` or ``unknown``
    (no regions to decide from); ``colour_flow``: a 2D region holds colour flow; ``split``: the screen holds a
    2D region and M-mode or spectral ones."""

    kind: str
    colour_flow: bool = False
    split: bool = False

    @property
    def screened(self) -> bool:
        return self.kind in ("2d", "unknown")


def _int(item, name: str) -> int | None:
    try:
        v = item.get(name)
        return None if v is None or v == "" else int(v)
    except (TypeError, ValueError):
        return None


def header_kind(ds) -> HeaderKind:
    """The :class:`HeaderKind` of a pydicom dataset (or of None: an exported image, which has no header)."""
    regions = [] if ds is None else (ds.get("SequenceOfUltrasoundRegions") or [])
    formats, types = [], []
    for item in regions:
        formats.append(_int(item, "RegionSpatialFormat"))
        types.append(_int(item, "RegionDataType"))
    two_d = [t for f, t in zip(formats, types) if f == SPATIAL_2D and t in (None, DATA_TISSUE, DATA_COLOUR_FLOW)]
    m_mode = SPATIAL_M_MODE in formats
    spectral = SPATIAL_SPECTRAL in formats or any(t in (DATA_PW, DATA_CW) for f, t in zip(formats, types)
                                                   if f != SPATIAL_2D)
    if two_d:
        return HeaderKind("2d", DATA_COLOUR_FLOW in two_d, m_mode or spectral)
    if spectral:
        return HeaderKind("spectral doppler")
    if m_mode:
        return HeaderKind("m-mode")
    return HeaderKind("unknown")


def colour_share(image: np.ndarray, box) -> float:
    """Share of the pixels inside ``box`` (x1, y1, x2, y2, standard pixels) that are colour; 0 for a grey image."""
    if image.ndim != 3 or box is None:
        return 0.0
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return 0.0
    from echoavc.preprocess.frame import chroma

    return float(np.mean(chroma(image[y1:y2, x1:x2]) > COLOUR_CHROMA))


def valve_area_grey(image: np.ndarray, box, max_share: float = COLOUR_MAX_SHARE) -> bool:
    """The colour-Doppler rule: True when the valve box of a standard frame is grey enough to screen."""
    return colour_share(image, box) <= max_share
