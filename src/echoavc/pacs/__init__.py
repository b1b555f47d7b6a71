"""Screening straight from a PACS: Orthanc's REST API or any PACS over DIMSE, with results stored back.

- ``screen.py``: :func:`screen_study`, :func:`screen_studies`, :func:`find_studies` (fetch, screen with
  ``echoavc.predict``, SR + SC, upload) and :func:`screen_inputs` (what ``echoavc predict`` calls).
- ``orthanc.py``: the Orthanc REST calls (standard library HTTP) and credentials from env or file.
- ``dimse.py``: C-FIND, C-MOVE to a local Storage SCP, C-STORE (pynetdicom).
"""

from echoavc.lazy import lazy_exports

# Lazy: every CLI start imports ``echoavc.pacs.cli``, which must not pay for pydicom and the screening path.
_EXPORTS = dict.fromkeys(["StudyScreening", "find_studies", "is_pacs_url", "parse_source", "screen_inputs",
                          "screen_studies", "screen_study"], "screen")
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
