"""Starting weights: nothing is downloaded unless the user asks, with ``echoavc weights fetch``.

Training starts from scratch by default (``pretrained="none"``). To start from pretrained weights, put them in
the echoavc weights cache (``<cache>/weights``, see :func:`echoavc.runtime.cache_dir`) once, then name them:

    echoavc weights fetch mobilenetv3_small_100   # a timm backbone's ImageNet weights (Hugging Face hub)
    echoavc weights fetch yolov5n                 # Ultralytics' COCO checkpoint (yolov5nu.pt, GitHub)
    echoavc weights import my_backbone.pth NAME   # a file you have, e.g. copied from an online machine
    echoavc weights list                          # name, source, sha256
    echoavc classifier train ... --pretrained mobilenetv3_small_100   (or --pretrained PATH)

The cache keeps an index (``index.json``: name -> file, source, sha256). Every trained model records where its
first weights came from and their hash (:func:`starting_record`); model bundles show it in MODEL_CARD.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path

from echoavc import runtime
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text

INDEX = "index.json"
#: where ``fetch`` downloads from, by kind: the host checked first (one short connection test, no retries)
HOSTS = {"timm": "huggingface.co", "ultralytics": "github.com"}

__all__ = ["weights_app", "cache_folder", "fetch", "import_file", "list_weights", "lookup", "resolve_file", "file_sha256",
           "starting_record", "describe_start", "detector_start", "classifier_start"]


def cache_folder() -> Path:
    return runtime.cache_dir() / "weights"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _index() -> dict:
    try:
        return json.loads((cache_folder() / INDEX).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise EchoAVCError(f"unreadable weights index ({type(exc).__name__})", cache_folder() / INDEX) from None


def _record(name: str, file: Path, source: str, kind: str) -> dict:
    folder = cache_folder()
    entry = {"file": file.name, "source": source, "kind": kind, "sha256": file_sha256(file),
             "added": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    index = _index()
    index[name] = entry
    atomic_write_text(folder / INDEX, json.dumps(index, indent=1, sort_keys=True) + "\n")
    return {"name": name, **entry, "path": str(folder / file.name)}


def _kind_of(name: str) -> str:
    """"ultralytics" for a YOLO model name (yolov5n, yolo11s, ...), "timm" for a timm backbone; else an error."""
    from echoavc.detector.model import parse_model

    try:
        parse_model(name)
        return "ultralytics"
    except EchoAVCError:
        pass
    import timm

    if timm.is_model(name):
        return "timm"
    raise EchoAVCError(f"unknown weights name {name!r}: give a timm backbone (e.g. mobilenetv3_small_100, "
                       "efficientnet_b0) or a YOLO model (yolov5n, yolov5s, yolo11n, ...)")


def _online_or_fail(name: str, kind: str) -> None:
    host = HOSTS[kind]
    as_name = name
    if kind == "ultralytics":  # imported under the name fetch would give it, "auto" finds it (yolov5nu.pt)
        from echoavc.detector.model import built_name

        as_name = built_name(name)
    advice = f"copy the file from an online machine and run `echoavc weights import FILE {as_name}`"
    if runtime.offline_requested():
        raise EchoAVCError(f"cannot fetch {name}: offline (ECHOAVC_OFFLINE is set); {advice}")
    try:
        with socket.create_connection((host, 443), timeout=3):
            pass
    except OSError as exc:
        raise EchoAVCError(f"cannot fetch {name}: {host} cannot be reached ({type(exc).__name__}); {advice}") from None


def fetch(name: str) -> dict:
    """Download ``name``'s pretrained weights into the cache (asked for explicitly: the only download echoavc
    makes); returns the index entry. A timm backbone's weights are saved as ``NAME.safetensors``; a YOLO model's
    COCO checkpoint as Ultralytics names it (``yolov5nu.pt``)."""
    kind = _kind_of(name)
    _online_or_fail(name, kind)
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "ultralytics":
        from ultralytics.utils.downloads import attempt_download_asset

        from echoavc.detector.model import built_name, pretrained_file

        runtime.configure()
        target = folder / pretrained_file(name)
        try:
            got = Path(attempt_download_asset(str(target)))
        except Exception as exc:  # noqa: BLE001 (any download failure: one line)
            raise EchoAVCError(f"cannot fetch {name}: download failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:150] if str(exc) else ''})") from None
        if not got.is_file():
            raise EchoAVCError(f"cannot fetch {name}: the download gave no file", target)
        if got.resolve() != target.resolve():
            shutil.move(str(got), target)
        return _record(built_name(name), target, f"ultralytics/assets release: {target.name}", kind)
    import timm
    import torch
    from safetensors.torch import save_file

    try:
        model = timm.create_model(name, pretrained=True)
    except Exception as exc:  # noqa: BLE001
        raise EchoAVCError(f"cannot fetch {name}: download failed ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:150] if str(exc) else ''})") from None
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    source = f"hf-hub:{cfg['hf_hub_id']}" if cfg.get("hf_hub_id") else (cfg.get("url") or "timm")
    target = folder / f"{name}.safetensors"
    tmp = folder / f".{target.name}.tmp"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)},
              str(tmp))
    os.replace(tmp, target)
    return _record(name, target, source, kind)


def import_file(file: str | Path, name: str) -> dict:
    """Copy a weights file into the cache under ``name`` (a timm ``.pth``/``.safetensors`` state dict or an
    Ultralytics ``.pt`` checkpoint); returns the index entry."""
    src = Path(file).expanduser()
    if not src.is_file():
        raise EchoAVCError("no such weights file", src)
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise EchoAVCError(f"weights name must be a plain name, not {name!r}")
    suffix = "".join(src.suffixes[-1:]) or ".bin"
    if suffix not in (".pt", ".pth", ".safetensors", ".bin"):
        raise EchoAVCError(f"unknown weights file type {suffix!r} (expected .pt, .pth, .safetensors or .bin)", src)
    kind = "ultralytics" if suffix == ".pt" else "timm"
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}{suffix}"
    tmp = folder / f".{target.name}.tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)
    return _record(name, target, f"file:{src.resolve()}", kind)


def list_weights() -> list[dict]:
    """Every file in the cache: name, source, sha256 (files put there by hand: source "unknown")."""
    folder = cache_folder()
    index = _index()
    rows, seen = [], set()
    for name, e in sorted(index.items()):
        p = folder / e["file"]
        if p.is_file():
            rows.append({"name": name, "source": e.get("source", ""), "sha256": e.get("sha256", ""),
                         "kind": e.get("kind", ""), "path": str(p)})
            seen.add(e["file"])
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.name not in seen and p.name != INDEX and not p.name.startswith("."):
                rows.append({"name": p.stem, "source": "unknown (placed in the cache by hand)",
                             "sha256": file_sha256(p), "kind": "", "path": str(p)})
    return rows


def lookup(name: str) -> Path | None:
    """The cached file called ``name`` (by index name, or a file of that stem), or None."""
    folder = cache_folder()
    e = _index().get(name)
    if e and (folder / e["file"]).is_file():
        return folder / e["file"]
    if folder.is_dir():
        for p in sorted(folder.glob(f"{name}.*")):
            if p.is_file() and p.suffix in (".pt", ".pth", ".safetensors", ".bin"):
                return p
    return None


def resolve_file(spec: str) -> Path:
    """``--pretrained PATH | NAME``: an existing file, else the cached weights called NAME; else a one-line error
    saying how to get them."""
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    got = lookup(spec)
    if got is not None:
        return got
    looks_like_path = any(c in spec for c in "/\\") or p.suffix in (".pt", ".pth", ".safetensors", ".bin")
    if looks_like_path:
        raise EchoAVCError("pretrained weights file not found", p)
    raise EchoAVCError(f"no weights named {spec!r} in {cache_folder()}: run `echoavc weights fetch {spec}` "
                       "(downloads) or `echoavc weights import FILE NAME`, or pass a file path")


def starting_record(path: str | Path | None) -> dict:
    """What a model started from, for its records: ``{"from": "scratch"}`` or the file, its sha256 and, for a
    cached file, its name and source."""
    if path is None:
        return {"from": "scratch"}
    p = Path(path)
    rec = {"from": "file", "file": str(p), "sha256": file_sha256(p)}
    try:
        in_cache = p.resolve().parent == cache_folder().resolve()
    except OSError:
        in_cache = False
    if in_cache:
        for name, e in _index().items():
            if e.get("file") == p.name:
                rec.update(name=name, source=e.get("source"))
                break
    return rec


def describe_start(rec: dict | None) -> str:
    """One phrase for a model card: "trained from scratch" or the weights it started from."""
    if not rec:
        return "starting weights not recorded"
    if rec.get("from") == "scratch":
        return "trained from scratch"
    label = rec.get("name") or Path(rec.get("file", "?")).name
    src = f", {rec['source']}" if rec.get("source") else ""
    return f"started from {label}{src} (sha256 {str(rec.get('sha256', ''))[:16]})"


def detector_start(checkpoint: str | Path) -> dict:
    """The starting weights recorded in a detector checkpoint by ``echoavc detector train`` (older checkpoints:
    from their weights origin; checkpoints made elsewhere: "unknown")."""
    from echoavc.detector.model import checkpoint_info

    ea = checkpoint_info(checkpoint).get("echoavc") or {}
    if ea.get("starting_weights"):
        return ea["starting_weights"]
    if ea.get("weights_origin") == "from scratch":
        return {"from": "scratch"}
    return {"from": "unknown", "note": ea.get("weights_origin") or "not trained by echoavc: not recorded"}


def classifier_start(meta: dict) -> dict:
    """The starting weights recorded in a classifier's ``classifier.json``."""
    if meta.get("starting_weights"):
        return meta["starting_weights"]
    if meta.get("weights_source") == "scratch":
        return {"from": "scratch"}
    return {"from": "unknown", "note": meta.get("weights_source") or "not recorded"}


# ---------------------------------------------------------------- echoavc weights ...

import typer  # noqa: E402  (the command group sits beside the functions it calls)

weights_app = typer.Typer(help="Pretrained starting weights: fetch (the only download echoavc makes), import, list.",
                          no_args_is_help=True)


def _print_entry(e: dict) -> None:
    typer.echo(f"{e['name']}\t{e['source']}\t{e['sha256']}\t{e['path']}")


@weights_app.command("fetch")
def fetch_cmd(name: str = typer.Argument(..., help="A timm backbone (mobilenetv3_small_100, efficientnet_b0, ...) "
                                         "or a YOLO model (yolov5n, yolov5s, yolo11n, ...).")) -> None:
    """Download NAME's pretrained weights into the echoavc cache (needs the internet; asked for, never automatic)."""
    from echoavc.cliutil import fail

    try:
        _print_entry(fetch(name))
    except EchoAVCError as exc:
        fail(exc)


@weights_app.command("import")
def import_cmd(file: Path = typer.Argument(..., help="A .pth/.safetensors backbone state dict or an Ultralytics "
                                           ".pt checkpoint."),
               name: str = typer.Argument(..., help="The name to use it by: --pretrained NAME.")) -> None:
    """Copy a weights file you have into the echoavc cache under NAME."""
    from echoavc.cliutil import fail

    try:
        _print_entry(import_file(file, name))
    except EchoAVCError as exc:
        fail(exc)


@weights_app.command("list")
def list_cmd() -> None:
    """The cached weights: name, source, sha256, file (tab-separated)."""
    from echoavc.cliutil import fail

    try:
        rows = list_weights()
    except EchoAVCError as exc:
        fail(exc)
    if not rows:
        typer.echo(f"no weights in {cache_folder()} (training starts from scratch; `echoavc weights fetch NAME`)")
    for e in rows:
        _print_entry(e)
