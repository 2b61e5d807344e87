#!/usr/bin/python3
"""Tiny official-layout checkpoints whose ``args`` (a real argparse.Namespace, pickled by torch.save) say what they
are, for Mae.MLNet's WeightFileArgsTest. Each holds an encoder-only state dict under the official names
(img 8, patch 4, 3 channels, width 8, 1 block, mlp ratio 4: about 6 KB) with seeded random values; only the
names, shapes and ``args`` matter to the tests, never the values.

    /usr/bin/python3 test/Mae.MLNet.Tests/Fixtures/Interop/make_args_fixtures.py

(Debian's python3-torch 1.13; the output is byte-for-byte reproducible with the same torch build.)
"""
import argparse
import os
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def encoder_state_dict(seed):
    g = torch.Generator().manual_seed(seed)
    d, p, c, grid, hidden = 8, 4, 3, 2, 32
    r = lambda *s: torch.randn(*s, generator=g)
    sd = OrderedDict()
    sd["cls_token"] = r(1, 1, d)
    sd["pos_embed"] = r(1, 1 + grid * grid, d)
    sd["patch_embed.proj.weight"] = r(d, c, p, p)
    sd["patch_embed.proj.bias"] = r(d)
    for k, shape in [("norm1.weight", (d,)), ("norm1.bias", (d,)), ("attn.qkv.weight", (3 * d, d)), ("attn.qkv.bias", (3 * d,)),
                     ("attn.proj.weight", (d, d)), ("attn.proj.bias", (d,)), ("norm2.weight", (d,)), ("norm2.bias", (d,)),
                     ("mlp.fc1.weight", (hidden, d)), ("mlp.fc1.bias", (hidden,)), ("mlp.fc2.weight", (d, hidden)), ("mlp.fc2.bias", (d,))]:
        sd["blocks.0." + k] = r(*shape)
    sd["norm.weight"] = r(d)
    sd["norm.bias"] = r(d)
    return sd


def save(name, args, epoch=7):
    path = os.path.join(HERE, name)
    torch.save({"model": encoder_state_dict(1), "epoch": epoch, "args": args}, path)
    print(name, os.path.getsize(path), "bytes")


def ns(**kw):
    base = dict(model="mae_vit_tiny_patch4", input_size=8, norm_pix_loss=False, mask_ratio=0.75, batch_size=4,
                accum_iter=1, epochs=10, warmup_epochs=1, blr=1.5e-4, lr=None, min_lr=0.0, weight_decay=0.05)
    base.update(kw)
    return argparse.Namespace(**base)


save("args_tiny.pth", ns())                                     # consistent; norm_pix_loss False
save("args_input_size_mismatch.pth", ns(input_size=16))         # pos_embed is for 8 px
save("args_bad_type.pth", ns(norm_pix_loss="yes"))              # a string where a flag belongs
