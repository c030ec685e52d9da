"""Probe: what the ANS coder's start costs each payload, and what a seeded start would save.

constriction's ANS coder starts from an empty state. The first symbols it encodes (the last ones the
decoder reads) are coded inefficiently until the state has grown to the coder's 2^24 precision, and
the final state is written out whole; together that is the gap between a payload's bytes and its
ideal bits (the sum of -log2 P under the net's own integer probabilities). A seeded start puts the
last k symbols of the decoding order into the initial state as raw bits, under a marker bit:

    state_0 = 2^k + (s[n-k] ... s[n-1] as a k-bit number)      a 32-bit word, k <= 31
    encode s[0 .. n-k) in reverse on top of it                  the decoder reads them as today
    the decoder, after n-k symbols, holds exactly state_0       and reads the last k bits from it

so the start is efficient at once and those k symbols ride in what was overhead. Each payload is
decoded back here with the same probabilities (the net's, which depend only on earlier symbols) and
checked symbol for symbol. Scored on the default's files of the evaluation frames:

    python docs/scripts/ans_seed_probe.py --eval ../shared/data/eval/kodak-frames-128x256 \
        ../shared/data/eval/driving-frames-128x256 --k 8 16 20 24 28 31
"""
from __future__ import annotations

import numpy as np

import compressor
from compressor import context_net
from compressor.context_model import _model
from compressor.context_net import _order, probabilities
from compressor.entropy_coder import coder_of, payload_of

from probe_args import data_parser, eval_frames  # this folder's shared probe arguments


def seeded_payload(s: np.ndarray, p: np.ndarray, k: int) -> bytes:
    """Symbols s (n,) in decoding order with their P(1) p (n,) -> ANS bytes, the last k symbols in the seed."""
    import constriction

    n = len(s)
    seed = (1 << k) | int("".join(map(str, s[n - k:])), 2)  # the marker bit, then the last k symbols
    coder = constriction.stream.stack.AnsCoder(np.array([seed], np.uint32))
    coder.encode_reverse(s[: n - k].astype(np.int32), _model(), p[: n - k])
    return payload_of(coder)


def seeded_decode(payload: bytes, p: np.ndarray, k: int) -> np.ndarray:
    """The inverse of `seeded_payload`, given the same probabilities; ValueError if the seed is not there."""
    coder = coder_of(payload)
    head = coder.decode(_model(), p[: len(p) - k]).astype(np.uint8)
    rest = coder.get_compressed()
    if len(rest) != 1 or int(rest[0]) >> k != 1:
        raise ValueError("no seed word after the coded symbols")
    tail = [(int(rest[0]) >> (k - 1 - i)) & 1 for i in range(k)]
    return np.concatenate([head, np.array(tail, np.uint8)])


def main() -> None:
    ap = data_parser(train_required=False)
    ap.add_argument("--k", type=int, nargs="+", default=[16, 20, 24, 28, 31])
    args = ap.parse_args()
    if any(not 1 <= k <= 31 for k in args.k):
        ap.error("--k must lie in 1..31 (the seed is one 32-bit word with its marker bit)")
    codec = compressor.load(args.model)
    net = codec._net
    for folder in args.eval:
        frames = eval_frames(folder)
        files = codec.encode_batch(list(frames))
        ideal, plain, seeded = [], [], {k: [] for k in args.k}
        for data in files:
            symbols, _ = codec.decode_symbols(data)
            s = symbols.reshape(-1)[_order(symbols.shape, net.groups).flat]
            p = probabilities(net, symbols[None])[0]
            ideal.append(context_net.code_bits(net, symbols) / 8)
            plain.append(len(context_net.encode(symbols, net)))
            for k in args.k:
                payload = seeded_payload(s, p, k)
                assert np.array_equal(seeded_decode(payload, p, k), s), "seeded payload did not decode back"
                seeded[k].append(len(payload))
        print(f"{folder}: {len(files)} frames, files {np.mean([len(f) for f in files]):.2f} B, "
              f"ideal payload {np.mean(ideal):.2f} B")
        print(f"  today's payload {np.mean(plain):.2f} B (+{np.mean(plain) - np.mean(ideal):.2f} over ideal)")
        for k, sizes in seeded.items():
            print(f"  seeded, k = {k:2d}: {np.mean(sizes):.2f} B (+{np.mean(sizes) - np.mean(ideal):.2f}), "
                  f"{np.mean(sizes) - np.mean(plain):+.2f} B a frame, all decoded back")


if __name__ == "__main__":
    main()
