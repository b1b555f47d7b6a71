"""``echoavc listen``: a DICOM node that receives exams from scanners or a PACS, screens each study once it is
complete, and forwards the results.

- ``queue.py``: the on-disk queue (durable writes, study states, pending forwards, the JSON log, status).
- ``scp.py``: the C-STORE / C-ECHO service (pynetdicom) with the ``--allow`` check.
- ``worker.py``: screening quiet studies, forwarding SR + SC with back-off, deleting identified data.
- ``cli.py``: the Typer command.
"""

from echoavc.lazy import lazy_exports

# Lazy: every CLI start imports ``echoavc.listen.cli``, which must not pay for pydicom and pynetdicom.
_EXPORTS = {"ListenQueue": "queue", "queue_status": "queue", "Listener": "worker", "ListenSettings": "worker"}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
