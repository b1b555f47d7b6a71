"""``echoavc listen``: a DICOM node that receives exams from scanners or a PACS, screens each study once it is
complete, and forwards the results.

- ``queue.py``: the on-disk queue (durable writes, study states, pending forwards, the JSON log, status).
- ``scp.py``: the C-STORE / C-ECHO service (pynetdicom) with the ``--allow`` check.
- ``worker.py``: screening quiet studies, forwarding SR + SC with back-off, deleting identified data.
- ``cli.py``: the Typer command.
"""

from echoavc.listen.queue import ListenQueue, queue_status
from echoavc.listen.worker import Listener, ListenSettings

__all__ = ["ListenQueue", "Listener", "ListenSettings", "queue_status"]
