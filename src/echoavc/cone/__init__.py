"""Finding the ultrasound cone (the image field) and cutting frames to the standard image."""

from .detect import find_cone, valid_region
from .geometry import Cone, clip_polygon, mask_bbox, mask_iou, polygon_mask, sector_polygon
from .transform import StandardTransform, box_iou

__all__ = [
    "Cone",
    "StandardTransform",
    "box_iou",
    "clip_polygon",
    "find_cone",
    "mask_bbox",
    "mask_iou",
    "polygon_mask",
    "sector_polygon",
    "valid_region",
]
