"""Find the files under the raw folder and decide what each one is and which split it feeds."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from longvie.config.schema import CurationConfig


@dataclass(frozen=True)
class SourceFile:
    path: Path
    relative: str  # POSIX path relative to the raw folder: the stable name in every table
    source_id: str
    split: str  # train | val | benchmark
    caption: str


def source_id_for(relative: str) -> str:
    """Readable and unique: the file stem plus a short hash of the relative path."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(relative).stem).strip("_") or "video"
    digest = hashlib.sha1(relative.encode()).hexdigest()[:6]
    return f"{stem}-{digest}"


def split_for(relative: str, config: CurationConfig) -> str:
    parts = Path(relative).parts[:-1]
    if any(part in config.benchmark_dirs for part in parts):
        return "benchmark"
    bucket = int(hashlib.sha1(relative.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if bucket < config.val_fraction else "train"


def caption_for(video: Path) -> str:
    """The caption sidecar (``<stem>.json`` key ``caption`` or ``<stem>.txt``), else the name."""
    meta = video.with_suffix(".json")
    if meta.is_file():
        try:
            caption = json.loads(meta.read_text()).get("caption")
            if isinstance(caption, str) and caption.strip():
                return caption.strip()
        except (OSError, ValueError, AttributeError):
            pass
    text = video.with_suffix(".txt")
    if text.is_file():
        try:
            if caption := text.read_text().strip().splitlines()[0].strip():
                return caption
        except (OSError, UnicodeDecodeError, IndexError):
            pass
    return re.sub(r"[_\-.]+", " ", video.stem).strip() or "a video"


def is_sidecar(path: Path, config: CurationConfig) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in config.sidecar_suffixes)


def is_hidden(relative: Path) -> bool:
    """Hidden files and anything in a hidden folder, e.g. a render still being written."""
    return any(part.startswith(".") for part in relative.parts)


def discover(raw: Path, config: CurationConfig) -> tuple[list[SourceFile], list[dict[str, str]]]:
    """Candidate videos (sorted) and the rejected non-candidates (unsupported extensions).

    Sidecars (ground truth, captions, manifests) are skipped silently; any other file gets a row
    in the rejected table, so nothing in the raw folder goes unaccounted for.
    """
    videos: list[SourceFile] = []
    rejected: list[dict[str, str]] = []
    extensions = {ext.lower() for ext in config.video_extensions}
    for path in sorted(p for p in raw.rglob("*") if not p.is_dir()):
        relative = path.relative_to(raw).as_posix()
        if is_hidden(path.relative_to(raw)) or is_sidecar(path, config):
            continue
        if path.suffix.lower() not in extensions:
            rejected.append(
                {"path": relative, "reason": f"unsupported extension '{path.suffix or '(none)'}'"}
            )
            continue
        videos.append(
            SourceFile(
                path=path,
                relative=relative,
                source_id=source_id_for(relative),
                split=split_for(relative, config),
                caption=caption_for(path),
            )
        )
    return videos, rejected
