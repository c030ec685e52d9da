"""Probe: is the shipped decoder short of capacity at its fixed codes?

Fine-tuning the shipped decoder on its own (snapped) codes moves nothing (docs/training-record.md): it
has learned what its size can from these codes, or what a small CPU fine-tune can teach it. Here it gets
more depth to learn with, in a form that starts as the same function:

    decoder.blocks += N new global-attention blocks (256 wide, over the 16x16-pixel tokens), or
    decoder.refine += N new blocks (128 wide, over the 8x8-pixel sub-tokens);
    each new block's attention and MLP output projections start at zero, so it starts as the identity

An A/B at equal data and steps, the encoder frozen: the shipped decoder fine-tuned N steps on the
training frames' snapped codes as it is (the control, `surprise_probe.py`'s control exactly), and the
same with the new blocks (at a higher learning rate than the rest). Both are scored on the evaluation
frames' snapped codes, so the bytes are the same. Each new 256-wide block costs about a tenth of the
decoder's operations, a 128-wide one about a sixth.

    python docs/scripts/decoder_depth_probe.py --eval ../shared/data/eval/kodak-frames-128x256 \
        ../shared/data/eval/driving-frames-128x256 --train ../shared/data/train/driving \
        ../shared/data/train/photos --steps 600 --blocks 2 --where main
"""
from __future__ import annotations

import copy

import torch
from torch import nn

import compressor
from compressor import context_net
from compressor.context_fit import load_frames, select_files
from compressor.layers import TransformerBlock, init_transformer_weights
from compressor.training.data import find_images

from probe_args import eval_frames  # this folder's shared probe arguments
from snap_probe import latent  # this folder's sibling probes
from surprise_probe import decoder_input, fine_tune, fine_tune_parser, score


class Extra(nn.Module):
    """A new block, named `extra` so that `surprise_probe.fine_tune` gives it its own learning rate."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.extra = TransformerBlock(dim, heads=heads)
        init_transformer_weights(self.extra)
        for proj in (self.extra.attn.proj, self.extra.mlp.fc2):  # the residual branches start at zero
            nn.init.zeros_(proj.weight)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        return self.extra(x, attn_bias)


def deepened(decoder: nn.Module, blocks: int, where: str) -> nn.Module:
    """A copy of the decoder with `blocks` identity-initialised blocks after its main or refine stage."""
    decoder = copy.deepcopy(decoder).float()
    stage = decoder.blocks if where == "main" else decoder.refine
    dim = decoder.dim if where == "main" else decoder.refine_dim
    for _ in range(blocks):
        stage.append(Extra(dim, stage[0].attn.heads))
    return decoder


def main() -> None:
    ap = fine_tune_parser(extra_lr=1e-4)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--where", choices=("main", "refine"), default="main")
    ap.add_argument("--no-control", action="store_true", help="the deepened arm only")
    args = ap.parse_args()
    torch.manual_seed(0)
    codec = compressor.load(args.model)
    net, c = codec._net, codec.snap
    frames = load_frames(select_files(find_images(args.train), args.frames, []))
    inputs = {flip: decoder_input(net, context_net.snap(net, latent(codec, frames[:, :, ::-1].copy() if flip else frames), c),
                                  False) for flip in (False, True)}
    sets = [(f, decoder_input(net, context_net.snap(net, latent(codec, f), c), False))
            for f in map(eval_frames, args.eval)]
    print(f"{len(frames)} training frames, snap c = {c}, {args.steps} steps of {args.batch}", flush=True)
    decoder0 = codec.model.decoder
    print("| arm | " + " | ".join(f"set {k}" for k in range(len(sets))) + " | seconds |")
    print("|---|" + "---|" * (len(sets) + 1))
    print("| shipped decoder | " + " | ".join(f"{score(decoder0, f, s):.3f}" for f, s in sets) + " | |", flush=True)
    arms = [(f"{args.blocks} more blocks ({args.where})", args.blocks)] + ([] if args.no_control else [("control", 0)])
    for name, blocks in arms:
        decoder = deepened(decoder0, blocks, args.where)
        seconds = fine_tune(decoder, frames, inputs, args.steps, args.lr, args.extra_lr, args.batch)
        print(f"| {name} | " + " | ".join(f"{score(decoder, f, s):.3f}" for f, s in sets) + f" | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
