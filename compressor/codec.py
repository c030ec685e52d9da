"""The user-facing codec: a loaded model plus the .bin format, images in and bytes out.

    Codec.encode:  image -> uint8 RGB -> model.encode_symbols (in overlapping windows for a
                   global-attention model and an image above its training frame) -> the shortest of
                   ANS under the context net (or the context table, for a checkpoint with tables and no
                   net), ANS under the per-channel table and raw bits -> header (model id, coding, size,
                   tiled and overlap flags, check byte; a 128x256 frame's is the 5-byte version 4) -> bytes
    Codec.decode:  bytes -> header checks -> symbols -> model.decode_symbols (cut as the header says) -> PIL image
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from compressor import bitstream, context_model, context_net, entropy_coder
from compressor.checkpoint import ModelCard
from compressor.clip_coding import decode_frames, encode_frame, encode_frames
from compressor.device import check_device, fast_bf16  # both still importable from here
from compressor.errors import ImageError, ModelMismatchError
from compressor.images import check_pixels, to_pil, to_rgb_array
from compressor.tokens import check_symbols, symbols_from_tokens, tokens_from_symbols
from compressor.zoo import DEFAULT_MODEL, find_shipped, name_of, resolve

if TYPE_CHECKING:  # compressor.tiling imports torch, which this module loads only on first use
    from compressor.tiling import Tiling

# Largest image the codec takes. Coded whole (`tile=False`), global attention's cost grows with the
# square of the token count, and a local model's memory with the pixels (`convnext` peaked at 420 MB
# on 1024x2048 in the bench), so bigger images are refused with a clear message.
MAX_CODEC_PIXELS = 2048 * 2048
BATCH = 32  # frames per network pass on the CPU: larger batches gained nothing here
GPU_BATCH = 256  # and on a GPU, where a pass of 32 frames would leave it mostly idle


class Codec:
    """A loaded model: `encode`/`decode` single images, `encode_batch`/`decode_batch` many frames.

    The decoder runs under bf16 autocast where the CPU has bf16 matrix units
    (`decode_precision="auto"`), which changes decoded pixels only within rounding; pass "fp32" to
    decode in float32 everywhere. The encoder runs in float32 unless its model card says
    `"encode_precision": "bf16"` and the CPU has those units (`encode_precision="auto"`): bf16 rounding
    flips the sign of latents near zero, which costs a model with small margins 0.07 dB (`vit-long2`:
    5.8% of the bits) and one distilled to wide margins nothing measurable (`vit-distil`: 0.2% of the
    bits, -0.004 dB or less) for a 2.7x faster encoder. The bytes then depend on the CPU's bf16 support
    (every file decodes anywhere); pass "fp32" for bytes that do not.

    `device="cuda"` runs the networks on a GPU (bf16 decoding where the GPU supports it); entropy
    coding and the format stay on the CPU, so files move freely between devices. A GPU's float32
    arithmetic differs from the CPU's in rounding, so a handful of near-zero latents may take the other
    sign: the bytes of one image can differ between devices, each file decoding correctly anywhere.
    """

    def __init__(self, model, card: ModelCard, *, decode_precision: str = "auto", encode_precision: str = "auto",
                 device: str = "cpu"):
        for name, value in (("decode_precision", decode_precision), ("encode_precision", encode_precision)):
            if value not in ("auto", "fp32", "bf16"):
                raise ValueError(f"{name} must be auto, fp32 or bf16, not {value!r}")
        self.device = check_device(device)
        self.model = model
        self.card = card
        fast = fast_bf16(self.device)
        if decode_precision == "auto":
            decode_precision = "bf16" if fast else "fp32"
        self.decode_precision = decode_precision
        if encode_precision == "auto":
            encode_precision = "bf16" if fast and card.card.get("encode_precision") == "bf16" else "fp32"
        self.encode_precision = encode_precision
        self.batch = GPU_BATCH if self.device.type == "cuda" else BATCH
        self._cdf = model.bottleneck.cdf.numpy().astype(np.int32)
        # None: a checkpoint without context tables writes version 1 only
        self._tables = None if card.context_tables is None else context_model.Tables(card.context_tables)
        # None: a checkpoint without a context net writes versions 1 and 2 only
        self._net = None if card.context_net is None else context_net.ContextNet(card.context_net)
        model.to(self.device)
        # A codec never trains its weights; without their gradients a search's backward pass (refine,
        # flips) computes only the code's: `flips=2` with vit-distil-ft 24.6 -> 26.0 frames/s (batch 32).
        model.requires_grad_(False)
        # Global attention is coded in windows of the frame it was trained on (compressor.tiling).
        crop = card.card.get("training", {}).get("crop", (128, 256))
        self.tile = (crop[0] // model.stride, crop[1] // model.stride) if model.global_attention else None
        self.refine_start_scale = card.refine_start_scale  # an attribute, so a caller may search at another scale
        self.snap = float(card.card.get("snap", 0.0)) if self._net else 0.0  # c of `context_net.snap`; 0: plain

    # --- metadata ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.card.name

    @property
    def model_id(self) -> int:
        return self.card.model_id

    @property
    def architecture(self) -> dict:
        return {"encoder": self.card.config["encoder"], "decoder": self.card.config["decoder"]}

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def training(self) -> dict:
        return self.card.card.get("training", {})

    @property
    def results(self) -> dict:
        return self.card.card.get("results", {})

    def __repr__(self) -> str:
        return f"Codec(name={self.name!r}, model_id={self.model_id:04x}, parameters={self.parameters})"

    # --- encode -----------------------------------------------------------------------------
    def encode(self, image, *, refine: int = 0, flips: int = 0, tile: bool = True, overlap: bool = True,
               rate_weight: float = 0.0) -> bytes:
        return self.encode_batch([image], refine=refine, flips=flips, tile=tile, overlap=overlap,
                                 rate_weight=rate_weight)[0]

    def encode_batch(self, images, *, refine: int = 0, flips: int = 0, tile: bool = True,
                     overlap: bool = True, rate_weight: float = 0.0) -> list[bytes]:
        """Encode many images; images of the same size share model passes of up to `self.batch` frames.

        `refine` > 0 searches, with that many decoder gradient steps, for a code this decoder
        reconstructs better; `flips` > 0 searches with that many greedy rounds of bit flips instead
        (`compressor.search`: fewer passes go further with flips, more with refine). Either is slower
        encoding, same format, never worse than the plain code. Searched bytes are exact on one machine
        but may differ across CPUs (bf16 rounding). `rate_weight` > 0 (with `flips`) makes the search
        rate-aware: it minimises MSE + rate_weight * bits under the model's context tables, trading
        error for bytes (`search.flip_symbols`); 2e-6, about bare AVIF's own trade near 224 B, is a start.
        `tile=False` codes an image larger than a global-attention model's training frame whole
        rather than in windows of that frame (slower and, for the shipped models, far worse);
        `overlap=False` cuts it in tiles side by side, not overlapping (3.5x fewer network passes,
        0.2 dB worse on Kodak).
        """
        if refine < 0 or flips < 0:
            raise ValueError(f"refine and flips must be 0 or more, not {refine} and {flips}")
        if refine and flips:
            raise ValueError("refine and flips are two searches: choose one")
        if rate_weight < 0 or (rate_weight and not flips):
            raise ValueError("rate_weight must be 0 or more, and is a weight of the flips search (flips > 0)")
        rate = self._context_rate() if rate_weight else None
        arrays = _image_arrays(images, "encode_batch", "encode")
        from compressor.search import flip_symbols, refine_symbols

        bf16 = self.decode_precision == "bf16"  # a search runs the decoder as decode will run it

        def symbols_of(x):
            t = self._tiling_for(*x.shape[-2:], tile, overlap)
            if refine:
                return refine_symbols(self.model, x, steps=refine, bf16=bf16, tiling=t, start=self._encode_latent(x, t),
                                      start_scale=self.refine_start_scale)  # from the latent at the card's precision
            if flips:
                return flip_symbols(self.model, x, rounds=flips, bf16=bf16, tiling=t, latent=self._encode_latent(x, t),
                                    rate=rate, rate_weight=rate_weight)
            return self._encode_symbols(x, t)
        symbols = self._run_batched(arrays, symbols_of)
        records = encode_frames(symbols, self._cdf, self._tables, net=self._net)  # the net's pass batched
        return [self._packed(record, a.shape[:2], self._tiling_for(*a.shape[:2], tile, overlap))
                for record, a in zip(records, arrays)]

    def _context_rate(self):
        """The context tables as a torch rate (`context_rate.ContextRate`), built on first use."""
        if self._tables is None:
            raise ValueError(f"'{self.name}' has no context tables: a rate-aware search needs them")
        if getattr(self, "_rate", None) is None:
            from compressor.context_rate import ContextRate

            self._rate = ContextRate(self._tables.arrays["spatial"], self.device)
        return self._rate

    def encode_symbols(self, image, *, tile: bool = True, overlap: bool = True) -> np.ndarray:
        """The uint8 symbols (14, h, w) an image codes to, before entropy coding."""
        a = to_rgb_array(image, max_pixels=MAX_CODEC_PIXELS)
        t = self._tiling_for(*a.shape[:2], tile, overlap)
        return self._run_batched([a], lambda x: self._encode_symbols(x, t))[0]

    def _encode_symbols(self, x, tiling: Tiling | None):
        """(B, 3, H, W) in [0, 1] -> uint8 symbols: the one encode path at `encode_precision`, then the card's snap."""
        if self.snap:
            import torch

            return torch.from_numpy(context_net.snap(self._net, self._encode_latent(x, tiling).cpu().numpy(), self.snap))
        with self._encoder_autocast():
            return self.model.encode_symbols(x, tiling)

    def _encode_latent(self, x, tiling: Tiling | None):
        """(B, 3, H, W) in [0, 1] -> the encoder's float32 latent (B, C, gh, gw) at `encode_precision`."""
        with self._encoder_autocast():
            return self.model.encode_latent(self.model.pad(x), tiling).float()

    @contextmanager
    def _encoder_autocast(self):
        """bf16 autocast at `encode_precision`, attention as decoding runs it (`layers.cpu_attention_path`)."""
        import torch

        from compressor.layers import cpu_attention_path

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.encode_precision == "bf16"), \
                cpu_attention_path():
            yield

    def _tiling_for(self, height: int, width: int, tile: bool = True, overlap: bool = True) -> Tiling | None:
        """How an image of this size is cut into network passes, or None when it is coded whole."""
        from compressor.tiling import Tiling

        if self.tile is None or not tile:
            return None
        gh, gw = self.model.latent_grid(height, width)
        return Tiling(self.tile, overlap) if gh > self.tile[0] or gw > self.tile[1] else None

    def _pack(self, symbols: np.ndarray, size: tuple[int, int], tiling: Tiling | None = None) -> bytes:
        return self._packed(encode_frame(symbols, self._cdf, self._tables, net=self._net), size, tiling)

    def _packed(self, record: tuple[int, bytes], size: tuple[int, int], tiling: Tiling | None = None) -> bytes:
        """A `.bin` file of one frame's (kind, payload) as `clip_coding.encode_frame(s)` chose them: the
        shortest coding (the older version on a tie), raw bits unless something is shorter (so a
        128x256 frame's payload stays at 224 bytes or fewer), as the clip records choose."""
        from compressor.clip import CONTEXT, NET, RAW

        kind, payload = record
        header = bitstream.Header(model_id=self.model_id, height=size[0], width=size[1], raw=kind == RAW,
                                  tiled=tiling is not None, overlap=tiling is not None and tiling.overlap,
                                  context=kind == CONTEXT, net=kind == NET,
                                  standard=tuple(size) == bitstream.STANDARD_FRAME and tiling is None)
        return bitstream.pack(header, payload)

    # --- tokens (compressor.tokens) -----------------------------------------------------------
    def symbols_batch(self, images) -> np.ndarray:
        """Frames of one size (a list of images, or a uint8 array (N, H, W, 3)) -> uint8 symbols (N, C, h, w)."""
        arrays = _image_arrays(images, "symbols_batch / tokens", "a list of one")
        if not arrays:
            raise ImageError("no frames given")
        if len({a.shape for a in arrays}) > 1:
            raise ImageError("frames must all have one size; resize them first (compressor tokens does)")
        t = self._tiling_for(*arrays[0].shape[:2])
        return np.stack(self._run_batched(arrays, lambda x: self._encode_symbols(x, t)))

    def tokens(self, images) -> np.ndarray:
        """Frames of one size (a list of images, or a uint8 array (N, H, W, 3)) -> uint16 tokens (N, h, w).

        Bit k of a token is latent channel k (`compressor.tokens`); a 128x256 frame gives 8 x 16 tokens.
        """
        return tokens_from_symbols(self.symbols_batch(images))

    def from_tokens(self, tokens, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint16 tokens (N, h, w) -> uint8 frames (N, H, W, 3); `size` defaults to the full grid (16h, 16w)."""
        return self.frames_from_symbols(symbols_from_tokens(tokens, self.model.latent_channels), size)

    def frames_from_symbols(self, symbols: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 symbols (N, C, h, w) -> uint8 frames (N, H, W, 3), decoded in batches of `self.batch`."""
        symbols = check_symbols(symbols, self.model.latent_channels)
        n, _, h, w = symbols.shape
        size = tuple(size) if size is not None else (h * self.model.stride, w * self.model.stride)
        if self.model.latent_grid(*size) != (h, w):
            raise ImageError(f"a latent grid of {h}x{w} does not make a {size[0]}x{size[1]} frame")
        tiling = self._tiling_for(*size)
        out = np.empty((n, *size, 3), np.uint8)
        for start in range(0, n, self.batch):
            out[start : start + self.batch] = self._decode_symbols(symbols[start : start + self.batch], size, tiling)
        return out

    # --- decode -----------------------------------------------------------------------------
    def decode(self, data: bytes):
        """Bytes of a .bin (or the path of one) -> PIL image at the original size."""
        return to_pil(self.decode_batch_arrays([data])[0])

    def decode_batch(self, datas) -> list:
        return [to_pil(a) for a in self.decode_batch_arrays(datas)]

    def decode_batch_arrays(self, datas) -> list[np.ndarray]:
        """Bytes of many .bin files -> uint8 arrays (H, W, 3); same-size frames share model passes."""
        if isinstance(datas, (str, bytes, bytearray, memoryview, os.PathLike)):
            raise TypeError(f"decode_batch takes a list of .bin contents, not {type(datas).__name__} (use decode for one)")
        parsed = self._parse_many([bitstream.bin_bytes(d) for d in datas])
        out: list = [None] * len(parsed)
        for (size, tiling), chunk in _same_key_chunks([(size, tiling) for _, size, tiling in parsed], self.batch):
            u8 = self._decode_symbols(np.stack([parsed[i][0] for i in chunk]), size, tiling)  # (b, H, W, 3)
            for j, i in enumerate(chunk):
                out[i] = np.ascontiguousarray(u8[j])
        return out

    def _decode_symbols(self, symbols: np.ndarray, size: tuple[int, int], tiling: Tiling | None) -> np.ndarray:
        """uint8 symbols (b, C, gh, gw) -> uint8 images (b, H, W, 3), at this codec's `decode_precision`."""
        import torch

        from compressor.layers import cpu_attention_path

        bf16 = self.decode_precision == "bf16"
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16), \
                cpu_attention_path():
            sym = torch.from_numpy(np.ascontiguousarray(symbols)).to(self.device)  # (b, C, gh, gw)
            images = self.model.decode_symbols(sym, size, tiling)  # (b, 3, H, W)
            return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (b, H, W, 3)

    def decode_symbols(self, data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
        """Bytes of a .bin -> (uint8 symbols (14, h, w), (H, W)), with every check but the network."""
        symbols, size, _ = self._parse(data)
        return symbols, size

    def _parse(self, data: bytes) -> tuple[np.ndarray, tuple[int, int], Tiling | None]:
        """Bytes of a .bin -> (symbols, (H, W), tiling); raises on anything this codec cannot decode."""
        return self._parse_many([data])[0]

    def _parse_many(self, datas: list[bytes]) -> list[tuple[np.ndarray, tuple[int, int], Tiling | None]]:
        """`_parse` of many files; context-coded payloads of one latent shape are decoded together
        (`clip_coding.decode_frames`: one numpy step per wavefront or net step for the whole batch)."""
        from compressor.clip import CHANNEL, CONTEXT, NET, RAW
        from compressor.tiling import Tiling

        checked = [self._check(d) for d in datas]
        kinds = [RAW if h.raw else CONTEXT if h.context else NET if h.net else CHANNEL for h, _, _ in checked]
        symbols = decode_frames([(k, p, s) for k, (_, p, s) in zip(kinds, checked)], self._cdf, self._tables, self._net)
        return [(s, (h.height, h.width), Tiling(self.tile, h.overlap) if h.tiled else None)
                for s, (h, _, _) in zip(symbols, checked)]

    def _check(self, data: bytes) -> tuple[bitstream.Header, bytes, tuple[int, int, int]]:
        """Bytes of a .bin -> (header, payload, latent shape (C, h, w)), every check before entropy decoding."""
        header, payload = bitstream.unpack(data)
        if not self.card.accepts(header.model_id, header.coding_version):
            raise ModelMismatchError(
                f"file was written by model {header.model_id:04x}, not by '{self.name}' ({self.model_id:04x})"
            )
        if header.context and self._tables is None:  # unreachable for a genuine id: its tables are hashed in it
            raise bitstream.BitstreamError(f"a context-table payload, but '{self.name}' has no context tables")
        if header.net and self._net is None:  # likewise: a net is hashed into the id that writes net payloads
            raise bitstream.BitstreamError(f"a context-net payload, but '{self.name}' has no context net")
        check_pixels(header.height, header.width, MAX_CODEC_PIXELS)
        if header.tiled and self.tile is None:
            raise bitstream.BitstreamError(f"damaged .bin header (tiled flag set, but '{self.name}' codes images whole)")
        shape = (self.model.latent_channels, *self.model.latent_grid(header.height, header.width))
        if not header.raw and len(payload) >= entropy_coder.raw_size(int(np.prod(shape))):
            raise bitstream.BitstreamError("damaged .bin file (coded payload longer than the raw bits)")
        return header, payload, shape

    # --- shared -----------------------------------------------------------------------------
    def _run_batched(self, arrays: list[np.ndarray], fn) -> list[np.ndarray]:
        """uint8 (H, W, 3) arrays -> fn's per-image results as numpy arrays; same-size images share passes."""
        import torch

        out: list = [None] * len(arrays)
        with torch.inference_mode():
            for _, chunk in _same_key_chunks([a.shape for a in arrays], self.batch):
                u8 = torch.from_numpy(np.stack([arrays[i] for i in chunk])).to(self.device)  # (b, H, W, 3)
                x = u8.permute(0, 3, 1, 2)  # (b, 3, H, W)
                result = fn(x.float().div_(255)).cpu().numpy()
                for j, i in enumerate(chunk):
                    out[i] = result[j]
        return out


def _image_arrays(images, takes: str, single: str) -> list[np.ndarray]:
    """A list, or a 4-D array or tensor, of images -> uint8 (H, W, 3) arrays; one image is a TypeError."""
    if isinstance(images, (str, bytes, os.PathLike)) or getattr(images, "ndim", 4) != 4 or not hasattr(images, "__iter__"):
        raise TypeError(f"{takes}: give a list of images or an array (N, H, W, 3), not a "
                        f"{type(images).__name__}{tuple(getattr(images, 'shape', ()))} (for one image: {single})")
    return [to_rgb_array(im, max_pixels=MAX_CODEC_PIXELS) for im in images]


def _same_key_chunks(keys: list, size: int):
    """Indices grouped by equal key (an image size), in chunks of at most `size`: (key, [i, ...])."""
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    for key, idx in groups.items():
        for start in range(0, len(idx), size):
            yield key, idx[start : start + size]


@lru_cache(maxsize=8)
def _load_cached(path: str, device: str, stamp: tuple[int, int]) -> Codec:
    from compressor.model import load_model

    model, card = load_model(path)
    card.name = name_of(path) or card.name  # a shipped file goes by its zoo name, whatever its card says
    return Codec(model, card, device=device)


def load(name_or_path: str | os.PathLike = DEFAULT_MODEL, *, device: str = "cpu") -> Codec:
    """A shipped model by name ("vit.default") or a release checkpoint by path -> Codec (cached per device
    and file version: a checkpoint rewritten on disk, by `eval --record` say, loads anew)."""
    path = resolve(name_or_path).resolve()
    stat = path.stat()
    return _load_cached(str(path), str(check_device(device)), (stat.st_mtime_ns, stat.st_size))


def codec_for(data: bytes, model=None, device: str = "cpu") -> Codec:
    """The codec that must decode `data`: `model` if given, else the shipped model it names; on `device`."""
    if model is not None:
        return model if isinstance(model, Codec) else load(model, device=device)
    header, _ = bitstream.unpack(data)
    path = find_shipped(header.model_id, header.coding_version)
    if path is not None:
        return load(path, device=device)
    raise ModelMismatchError(
        f"file was written by model {header.model_id:04x}, which is not a shipped model; "
        "pass the checkpoint it was made with (decompress --model FILE.safetensors; decode(data, model=FILE))"
    )
