"""A clip made ready for standard frames: its cone found once, from a sample of its kept frames.

Decoding happens here (from bytes already in memory; no file I/O), because the cone is found on decoded
frames and those sample frames are handed out again rather than decoded twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from echoavc.cone import find_cone
from echoavc.dicom.read import DicomClip, decode_frames, frame_indices, tissue_regions
from echoavc.errors import EchoAVCError
from echoavc.preprocess.frame import StandardFrame
from echoavc.settings import IngestSettings

__all__ = ["PreparedClip", "prepare_clip", "prepare_image"]


@dataclass
class PreparedClip:
    """A clip's kept frames and the :class:`StandardFrame` that turns each into a standard frame."""

    #: None for a single image (PNG/JPEG): its one frame is in ``decoded``
    clip: DicomClip | None
    kept: list[int]
    frame: StandardFrame
    sample: np.ndarray
    #: decoded sample frames not yet handed out by :meth:`frames` (nothing decodes twice)
    decoded: dict[int, np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        return self.sample.shape[1:3]

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Decoded frames (original size) in order, the sample frames from memory."""
        wanted = self.kept if indices is None else list(indices)
        rest = [i for i in wanted if i not in self.decoded]
        if rest and self.clip is None:
            raise EchoAVCError(f"frames {rest[:3]} were handed out already")
        stream = decode_frames(self.clip, rest) if rest else iter(())
        for index in wanted:
            yield index, (self.decoded.pop(index) if index in self.decoded else next(stream)[1])

    def masked(self, frame: np.ndarray) -> np.ndarray:
        return self.frame.masked(frame)

    def standard(self, frame: np.ndarray) -> np.ndarray:
        return self.frame.standard(frame)

    def standard_outline(self) -> np.ndarray:
        return self.frame.outline()


def prepare_clip(clip: DicomClip, settings: IngestSettings) -> PreparedClip:
    """Find the cone once per clip, on a sample of its kept frames; raises EchoAVCError (NoConeError when
    there is no field) naming the clip."""
    kept = frame_indices(clip.n_frames, settings.every_nth)
    n_sample = min(len(kept), settings.cone.sample_frames)
    sample_idx = sorted({kept[int(round(i))] for i in np.linspace(0, len(kept) - 1, n_sample)})
    decoded = dict(decode_frames(clip, sample_idx))
    return _prepare(clip, kept, decoded, tissue_regions(clip.dataset), settings, clip.name)


def prepare_image(image: np.ndarray, settings: IngestSettings, name: str = "") -> PreparedClip:
    """The same for one exported image (PNG/JPEG, grey or RGB): a clip of one frame without regions."""
    return _prepare(None, [0], {0: np.asarray(image)}, None, settings, name)


def _prepare(clip, kept, decoded, regions, settings: IngestSettings, name: str) -> PreparedClip:
    sample = np.stack([decoded[i] for i in sorted(decoded)])
    try:
        cone = find_cone(sample, regions, settings.cone)
    except EchoAVCError as exc:
        raise exc.at(name)
    return PreparedClip(clip, kept, StandardFrame.of_sample(cone, sample, settings.size), sample, decoded)
