"""compressor: learned image compression at extreme rates (a 128x256 frame in at most 229 bytes).

    import compressor
    data = compressor.encode("frame.png")      # bytes of a .bin file
    image = compressor.decode(data)            # PIL.Image at the original size
    codec = compressor.load("vit.default")     # a Codec: encode/decode, batched variants, metadata

torch and the model load on first use, so importing the package stays fast.

Where things live: the codec core is flat in this folder (images, model, bottleneck, entropy_coder,
bitstream, tiling, search, codec, checkpoint); architectures/ holds one file per encoder/decoder
family; training/ trains a model and exports it; measure/ evaluates and benchmarks codecs.
"""
from __future__ import annotations

from compressor.errors import (
    BitstreamError,
    CompressorError,
    DeviceError,
    ImageError,
    ModelError,
    ModelMismatchError,
    TokenFileError,
)

__version__ = "0.1.0"

__all__ = [
    "encode",
    "decode",
    "load",
    "list_models",
    "open_clip",
    "clip_writer",
    "token_windows",
    "CompressorError",
    "BitstreamError",
    "ModelMismatchError",
    "ModelError",
    "ImageError",
    "DeviceError",
    "TokenFileError",
    "__version__",
]


def load(name_or_path=None, *, device: str = "cpu"):
    """A shipped model by name or a release checkpoint (.safetensors) by path -> `Codec` (None: the default).

    `device="cuda"` runs its networks on a GPU; files are the same format either way.
    """
    from compressor.codec import DEFAULT_MODEL, load as _load

    return _load(name_or_path or DEFAULT_MODEL, device=device)


def encode(image, model=None, *, refine: int = 0, flips: int = 0, tile: bool = True, overlap: bool = True,
           rate_weight: float = 0.0) -> bytes:
    """Compress an image (path, PIL.Image, uint8 HxWx3 array, or float tensor in [0, 1]) to .bin bytes.

    `refine=N` spends N decoder gradient steps searching for a better code, `flips=R` R rounds of greedy
    bit flips (slower, never worse; `compressor.search`), and `rate_weight=W` with flips makes that
    search trade error for bytes under the context tables (MSE + W x bits).
    `tile` and `overlap` say how a global-attention model cuts an image above its training frame
    (`Codec.encode_batch`).
    """
    from compressor.codec import DEFAULT_MODEL, Codec

    codec = model if isinstance(model, Codec) else load(model or DEFAULT_MODEL)
    return codec.encode(image, refine=refine, flips=flips, tile=tile, overlap=overlap, rate_weight=rate_weight)


def decode(data: bytes, model=None):
    """Decompress .bin bytes (or a .bin file's path) to a PIL.Image; the model is found from the file's
    header unless given."""
    from compressor.bitstream import bin_bytes
    from compressor.codec import codec_for

    data = bin_bytes(data)
    return codec_for(data, model).decode(data)


def list_models():
    """The shipped models, the default first: a list of `ModelCard` (name, model id, config, card)."""
    from compressor.checkpoint import read_card
    from compressor.zoo import shipped_models

    cards = []
    for name, path in shipped_models().items():
        card = read_card(path)
        card.name = name  # the zoo's name, whatever the card says
        cards.append(card)
    return cards


def open_clip(path, model=None, *, device: str = "cpu"):
    """A clip archive opened for its tokens, by entropy decoding alone (`compressor.archive.ClipTokens`):
    `clip[a:b]` is uint16 tokens (b - a, h, w) of frames a..b-1; `len(clip)`, `clip.fps`, `clip.frame_size`.
    `model`: the checkpoint it was written with, when that is not a shipped model; `device`: where
    `clip.frames(a, b)` runs the decoder ("cuda" for a GPU)."""
    from compressor.archive import ClipTokens

    return ClipTokens(path, model, device=device)


def clip_writer(path, model=None, *, fps: float | None = None, keyframe_interval: int | None = None,
                resize: bool = True):
    """A clip archive to write from Python (`compressor.archive_writer.ArchiveWriter`), as `compress
    drive.mp4 drive.bin` writes one: `add(frames)` (uint8 (N, H, W, 3) or a list of images; resized to the
    model's frame unless `resize=False`), or `add_tokens(tokens)`; `close()`, or a `with` block, puts it in
    place whole, and an error in the block leaves no file. Frames 0, K, 2K, ... are coded alone (K =
    `keyframe_interval`, 10 unless given), so any frame decodes from at most K records."""
    from compressor.archive_writer import KEYFRAME_INTERVAL, ArchiveWriter

    interval = KEYFRAME_INTERVAL if keyframe_interval is None else keyframe_interval
    return ArchiveWriter(path, model, fps=fps, keyframe_interval=interval, resize=resize)


def token_windows(sources, length: int, *, stride: int | None = None, every: int = 1, model=None):
    """Windows of `length` consecutive frames' tokens from clip archives, token files and folders of them,
    for a world model's data loader (`compressor.windows.TokenWindows`): `windows[i]` is uint16 tokens
    (length, h, w); a window starts every `stride` frames (default `length`) and takes every `every`-th
    frame; none spans two sources. `model`: the checkpoint they were made with, when not a shipped model."""
    from compressor.windows import TokenWindows

    return TokenWindows(sources, length, stride=stride, every=every, model=model)
