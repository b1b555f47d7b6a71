"""``echoavc listen``: the Typer command (registered in echoavc.cli)."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from echoavc.cliutil import fail
from echoavc.errors import EchoAVCError
from echoavc.settings import ListenSettings

_L = ListenSettings()


def listen(
    model: Annotated[Optional[Path], typer.Option("--model", help="Model bundle folder.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="De-identified results, one folder per study "
                                                "(named by its pseudonym), as echoavc predict writes them.")] = None,
    key: Annotated[Optional[Path], typer.Option("--key", help="Pseudonym key file (the ingest key): names the "
                                                "studies and instances in the queue and the log.")] = None,
    queue: Annotated[Optional[Path], typer.Option("--queue", help="The on-disk queue (identified data; default "
                                                  "OUT.queue beside OUT).")] = None,
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our AE title.")] = _L.ae_title,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = _L.host,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = _L.port,
    forward: Annotated[Optional[str], typer.Option("--forward", help="AE@HOST:PORT: C-STORE the SR and SC "
                                                   "there (retried with back-off).")] = None,
    allow: Annotated[Optional[list[str]], typer.Option("--allow", help="AE@ADDRESS (an IP or a network): accept "
                                                       "only these callers; repeat. Default: anyone.")] = None,
    quiet: Annotated[float, typer.Option("--quiet", min=0, help="Seconds without a new instance before a study "
                                         "is screened.")] = _L.quiet_s,
    retain: Annotated[float, typer.Option("--retain", min=0, help="Seconds identified instances stay in the "
                                          "queue after their results are out.")] = _L.retain_s,
    tls_cert: Annotated[Optional[Path], typer.Option("--tls-cert", help="PEM certificate (chain): DICOM over "
                                                     "TLS; needs --tls-key.")] = None,
    tls_key: Annotated[Optional[Path], typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    tls_ca: Annotated[Optional[Path], typer.Option("--tls-ca", help="PEM CA certificates: callers must present a "
                                                   "certificate signed by one (mutual TLS).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, torch or onnx.")] = "auto",
    overlays: Annotated[str, typer.Option("--overlays", help="driving, all or none.")] = _L.overlays,
    status: Annotated[Optional[Path], typer.Option("--status", help="Print the state of the queue folder DIR "
                                                   "(JSON) and exit.")] = None,
) -> None:
    """Receive echo studies over DICOM (C-STORE), screen each once complete, forward SR + SC (research use only)."""
    from echoavc.listen.queue import queue_status

    try:
        if status is not None:
            print(json.dumps(queue_status(status), indent=1))
            return
        missing = [n for n, v in (("--model", model), ("--out", out), ("--key", key)) if v is None]
        if missing:
            raise EchoAVCError(f"echoavc listen needs {', '.join(missing)}")
        if (tls_cert is None) != (tls_key is None) or (tls_ca and not tls_cert):
            raise EchoAVCError("TLS needs --tls-cert and --tls-key (and --tls-ca only with them)")
        from echoavc.listen.worker import Listener

        settings = replace(_L, ae_title=ae_title, host=host, port=port, quiet_s=quiet, retain_s=retain,
                           overlays=overlays)
        node = Listener(model, out, queue or out.with_name(out.name + ".queue"), key, forward=forward, allow=allow,
                        settings=settings, backend=backend,
                        tls=(tls_cert, tls_key, tls_ca) if tls_cert else None).start()
        signal.signal(signal.SIGTERM, lambda *_: node.stop())
        try:
            node.run()
        except KeyboardInterrupt:
            node.stop()
    except EchoAVCError as exc:
        fail(exc)


__all__ = ["listen"]
