"""Pictures for the screening report: a standard frame with the cone, the valve box, the call and Grad-CAM.

Pure functions, numpy in and numpy out. Colour images are RGB uint8; the BGR order OpenCV wants is
handled only inside ``encode_png``.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from echoavc.files import png_flags

# RGB. Red for a positive call, green for a negative one, yellow when the detector found a valve
# but no call was made (undetermined, low confidence).
CALCIFIED_RGB = (235, 64, 52)
NOT_CALCIFIED_RGB = (40, 200, 70)
UNDECIDED_RGB = (245, 215, 0)
CONE_RGB = (0, 255, 255)
LABEL_BACKGROUND_RGB = (20, 20, 20)
LABEL_TEXT_RGB = (255, 255, 255)

# Grad-CAM below this is noise; blending it would tint the whole valve region.
CAM_FLOOR = 0.05

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PAD = 3


def box_colour(decision: str | None) -> tuple[int, int, int]:
    """The RGB colour of the valve box for a decision ("calcified", "not calcified", anything else)."""
    if decision == "calcified":
        return CALCIFIED_RGB
    if decision == "not calcified":
        return NOT_CALCIFIED_RGB
    return UNDECIDED_RGB


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return image.copy()
    raise ValueError(f"image must be HxW grey or HxWx3 RGB, got shape {image.shape}")


def _check_image_size(image: np.ndarray) -> None:
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty, shape {image.shape}")


def _blend_cam(rgb: np.ndarray, cam, alpha: float) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != rgb.shape[:2]:
        raise ValueError(f"cam must have the image's size {rgb.shape[:2]}, got shape {cam.shape}")
    if not np.all(np.isfinite(cam)):
        raise ValueError("cam contains NaN or infinite values")
    cam = np.clip(cam, 0.0, 1.0)
    heat_bgr = cv2.applyColorMap(np.round(cam * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    # Weight follows the cam itself, so the strongest evidence shows most and the floor keeps
    # the rest of the frame untouched.
    weight = np.where(cam > CAM_FLOOR, alpha * cam, 0.0)[..., None]
    out = rgb.astype(np.float32) * (1.0 - weight) + heat * weight
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _check_cone(cone_outline) -> np.ndarray:
    pts = np.asarray(cone_outline, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 2:
        raise ValueError(f"cone_outline must be an Nx2 array of points (N >= 2), got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("cone_outline contains NaN or infinite coordinates")
    return pts


def _check_box(box) -> tuple[float, float, float, float]:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,):
        raise ValueError(f"box must be 4 numbers x1, y1, x2, y2, got shape {np.asarray(box).shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("box contains NaN or infinite coordinates")
    x1, y1, x2, y2 = (float(v) for v in b)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _ascii(text: str) -> str:
    # The Hershey fonts have no glyphs beyond ASCII; say so with "?" rather than draw garbage.
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def _draw_label(rgb: np.ndarray, text: str, box: tuple[float, float, float, float] | None) -> None:
    H, W = rgb.shape[:2]
    scale, thick = 0.5, 1
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    # Long labels shrink until they fit the width rather than run off the edge.
    while tw + 2 * _PAD > W and scale > 0.2:
        scale -= 0.05
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    w, h = tw + 2 * _PAD, th + base + 2 * _PAD
    if box is None:
        left, top = 0, 0
    else:
        x1, y1 = int(round(box[0])), int(round(box[1]))
        left, top = x1, y1 - h
        if top < 0:
            # No room above the box (valve at the top edge): put the label just inside it.
            top = max(y1, 0)
    left = int(min(max(left, 0), max(W - w, 0)))
    top = int(min(max(top, 0), max(H - h, 0)))
    cv2.rectangle(rgb, (left, top), (min(left + w, W) - 1, min(top + h, H) - 1), LABEL_BACKGROUND_RGB, -1)
    cv2.putText(rgb, text, (left + _PAD, top + _PAD + th), _FONT, scale, LABEL_TEXT_RGB, thick, cv2.LINE_AA)


def frame_overlay(image: np.ndarray, *, cone_outline=None, box=None, label: str = "",
                  decision: str | None = None, cam=None, alpha: float = 0.4) -> np.ndarray:
    """An RGB uint8 copy of ``image`` with the Grad-CAM heat map, the cone outline, the valve box and a label.

    ``image``: standard frame, uint8 grey (HxW) or RGB (HxWx3). ``cone_outline``: Nx2 points (x, y) in
    image pixels, drawn as a closed thin cyan polyline. ``box``: x1, y1, x2, y2 in image pixels, coloured by
    ``decision``. ``label``: drawn above the box (or top-left without a box) on a dark background, kept inside
    the image. ``cam``: float HxW in [0, 1]; JET blended with weight ``alpha * cam`` where cam > 0.05.
    """
    rgb = _as_rgb(image)
    _check_image_size(rgb)
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    # Validate everything before drawing anything, so a bad argument never leaves half a picture.
    pts = _check_cone(cone_outline) if cone_outline is not None else None
    b = _check_box(box) if box is not None else None
    if cam is not None:
        rgb = _blend_cam(rgb, cam, float(alpha))
    if pts is not None:
        poly = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        # LINE_8: a crisp one-pixel line in exact cyan; anti-aliasing smears it into the speckle.
        cv2.polylines(rgb, [poly], isClosed=True, color=CONE_RGB, thickness=1, lineType=cv2.LINE_8)
    if b is not None:
        p1 = (int(round(b[0])), int(round(b[1])))
        p2 = (int(round(b[2])), int(round(b[3])))
        cv2.rectangle(rgb, p1, p2, box_colour(decision), 2)
    if label:
        _draw_label(rgb, _ascii(str(label)), b)
    return rgb


def thumbnail(image: np.ndarray, width: int = 160) -> np.ndarray:
    """``image`` resized to ``width`` pixels wide, aspect ratio kept (INTER_AREA: no aliasing when shrinking)."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"thumbnail needs a non-empty HxW or HxWxC image, got {getattr(image, 'shape', image)!r}")
    width = int(width)
    if width < 1:
        raise ValueError(f"thumbnail width must be >= 1, got {width}")
    h, w = image.shape[:2]
    height = max(1, int(round(h * width / w)))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 grey (HxW) or RGB (HxWx3) image."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"encode_png needs a uint8 numpy image, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim != 2:
        raise ValueError(f"encode_png needs HxW grey or HxWx3 RGB, got shape {image.shape}")
    ok, buf = cv2.imencode(".png", image, png_flags())
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def png_data_uri(image: np.ndarray) -> str:
    """``data:image/png;base64,...`` for embedding ``image`` in HTML without a separate file."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")
