"""The screening report: pictures of the call (``overlay``) and the self-contained HTML page (``html``).

- ``frame_overlay``: a standard frame with cone outline, valve box coloured by decision, label, Grad-CAM.
- ``thumbnail``, ``encode_png``, ``png_data_uri``: small pictures and their embedding.
- ``write_overlay``: a PNG under the report folder, returning the relative path the report links.
- ``write_report``: ``report.html`` with the exam and frame tables, failures and the model card.
"""

from echoavc.report.html import BANNER, STATUS_WORDS, write_overlay, write_report
from echoavc.report.overlay import box_colour, encode_png, frame_overlay, png_data_uri, thumbnail

__all__ = ["BANNER", "STATUS_WORDS", "box_colour", "encode_png", "frame_overlay", "png_data_uri", "thumbnail",
           "write_overlay", "write_report"]
