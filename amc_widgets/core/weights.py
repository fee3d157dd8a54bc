"""Where a job's starting weights come from: the four choices, and the COCO-pretrained release
assets, downloaded once by the machine running amc (size and SHA-256 checked) into
``$AMC_HOME/weights``.  The training container never downloads: it gets the file as its
``weights`` channel.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amc_widgets.core.errors import AmcError
from amc_widgets.core.jobs import JOB_NAME_PATTERN

SCRATCH, COCO, FILE, JOB = "scratch", "coco", "file", "job"
JOB_PREFIX = "job:"
WEIGHTS_URL_ENV = "AMC_WEIGHTS_URL"
DEFAULT_WEIGHTS_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0"
CHUNK = 1 << 20
TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class AssetPin:
    """The expected size and SHA-256 of one release asset."""

    size: int
    sha256: str


# The COCO-pretrained YOLOv5u assets. Their sizes and hashes could not be read on the (offline)
# machine this was written on: until they are filled in from the release page, a download is
# checked against its Content-Length only and its SHA-256 is recorded beside the cached file.
PINNED_ASSETS: dict[str, AssetPin | None] = {
    "yolov5nu.pt": None,
    "yolov5su.pt": None,
    "yolov5mu.pt": None,
    "yolov5lu.pt": None,
    "yolov5xu.pt": None,
}


class WeightsError(AmcError):
    """Weights that cannot be used: missing, corrupt, or not a fit for the model and dataset."""


class WeightsUnavailableError(WeightsError):
    """A release asset could not be downloaded (no internet): the message says what to put where."""


@dataclass(frozen=True)
class WeightsChoice:
    """What to start from: ``scratch``, ``coco``, a ``.pt`` file (``value`` its path) or a
    previous job (``value`` its name)."""

    kind: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> WeightsChoice:
        """``coco``, ``scratch``, ``job:NAME`` or the path of a ``.pt`` file."""
        text = text.strip()
        if text.lower() in (SCRATCH, COCO):
            return cls(text.lower())
        if text.startswith(JOB_PREFIX):
            name = text[len(JOB_PREFIX):]
            if not JOB_NAME_PATTERN.match(name):
                raise WeightsError(f"weights: '{name}' is not a job name (job:NAME)")
            return cls(JOB, name)
        if not text.endswith(".pt"):
            raise WeightsError(f"weights: use coco, scratch, job:NAME or the path of a .pt file (got '{text}')")
        return cls(FILE, text)

    def __str__(self) -> str:
        return {JOB: f"{JOB_PREFIX}{self.value}", FILE: self.value}.get(self.kind, self.kind)


def describe_source(hyperparameters: dict[str, str]) -> str:
    """A job's starting point in words, from its ``weights_source`` (``coco:yolov5nu.pt sha256:...``)."""
    source = hyperparameters.get("weights_source", "")
    if not source or source == SCRATCH:
        return f"file {hyperparameters['weights']}" if hyperparameters.get("weights") else "from scratch"
    origin, _, digest = source.partition(" sha256:")
    kind, _, value = origin.partition(":")
    words = {COCO: f"COCO-pretrained {value}", JOB: f"job {value}", FILE: f"file {value}"}.get(kind, origin)
    return f"{words} (sha256 {digest[:12]})" if digest else words


def coco_asset(model: str) -> str:
    """The release asset of COCO-pretrained weights for a model size: yolov5n -> yolov5nu.pt."""
    return f"{model}u.pt"


def workspace_cache(home: Path | str | None = None) -> WeightsCache:
    """The release assets of this machine's workspace: ``$AMC_HOME/weights`` (``~/.amc/weights``)."""
    return WeightsCache(Path(home or os.environ.get("AMC_HOME") or Path.home() / ".amc").expanduser() / "weights")


def default_choice(cache: WeightsCache, model: str) -> WeightsChoice:
    """COCO-pretrained when its file is on this machine already, else from scratch."""
    return WeightsChoice(COCO if cache.cached(coco_asset(model)) else SCRATCH)


def stored_weights_name(source: Path, sha256: str) -> str:
    """The name a ``.pt`` is stored under in the user's weights space: the same file is stored once."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source).stem).strip("-.")[:40] or "weights"
    return f"{stem}-{sha256[:12]}.pt"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class WeightsCache:
    """Release assets downloaded once into ``folder`` (``$AMC_HOME/weights``)."""

    def __init__(self, folder: Path, base_url: str | None = None,
                 pins: dict[str, AssetPin | None] | None = None,
                 urlopen: Callable[..., object] = urllib.request.urlopen):
        self.folder = Path(folder)
        self.base_url = (base_url or os.environ.get(WEIGHTS_URL_ENV) or DEFAULT_WEIGHTS_URL).rstrip("/")
        self.pins = PINNED_ASSETS if pins is None else pins
        self._urlopen = urlopen

    def url(self, asset: str) -> str:
        return f"{self.base_url}/{asset}"

    def path(self, asset: str) -> Path:
        return self.folder / asset

    def cached(self, asset: str) -> Path | None:
        """The cached file, checked against its pin; None when it is not there."""
        path = self.path(asset)
        if not path.is_file():
            return None
        pin, recorded = self.pins.get(asset), self.folder / f"{asset}.sha256"
        expected = pin.sha256 if pin else (recorded.read_text().split()[0] if recorded.is_file() else None)
        if expected and sha256_file(path) != expected:
            raise WeightsError(f"{path} is not the release asset {asset} (its SHA-256 differs from the "
                               f"expected {expected}): delete it and download it again")
        return path

    def fetch(self, asset: str, progress: Callable[[int, int], None] | None = None) -> Path:
        """The cached asset, downloaded first if needed; nothing is kept unless it checks out."""
        if asset not in self.pins:
            raise WeightsError(f"{asset} is not a known release asset ({', '.join(sorted(self.pins))})")
        if (path := self.cached(asset)) is not None:
            return path
        url, dest = self.url(asset), self.path(asset)
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".partial-{asset}-{secrets.token_hex(3)}"
        try:
            digest, size = self._download(url, asset, partial, progress)
            pin = self.pins.get(asset)
            if pin and (size != pin.size or digest != pin.sha256):
                raise WeightsError(f"The download of {asset} from {url} is corrupt: {size} bytes with SHA-256 "
                                   f"{digest}, expected {pin.size} bytes with {pin.sha256}. Nothing was kept.")
            if pin is None:  # not pinned yet: remember what was downloaded
                (self.folder / f"{asset}.sha256").write_text(f"{digest}  {asset}\n", encoding="utf-8")
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def _download(self, url: str, asset: str, dest: Path,
                  progress: Callable[[int, int], None] | None) -> tuple[str, int]:
        digest, done, pin = hashlib.sha256(), 0, self.pins.get(asset)
        try:
            with self._urlopen(url, timeout=TIMEOUT_SECONDS) as response, open(dest, "wb") as out:
                total = int(response.headers.get("Content-Length") or (pin.size if pin else 0))
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WeightsUnavailableError(
                f"Could not download {asset} from {url} ({reason}). Without internet, download that file "
                f"on another machine and put it at {self.path(asset)}, "
                "or train from scratch (--weights scratch; 'From scratch' on the Train tab).") from None
        if total and done != total:
            raise WeightsError(f"The download of {asset} from {url} stopped after {done} of {total} "
                               "bytes. Nothing was kept.")
        return digest.hexdigest(), done
