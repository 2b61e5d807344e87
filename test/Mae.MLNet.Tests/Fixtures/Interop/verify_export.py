#!/usr/bin/python3
"""Check that weights exported by Mae.MLNet load into the OFFICIAL PyTorch MAE.

A tool for a human, not a test.  Given a safetensors file written by the C#
side (official names: ``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.{i}.*``, ``norm.*``, ``decoder_*``, ``mask_token``) and its JSON config
(keys: img_size, patch_size, in_chans, embed_dim, depth, num_heads,
decoder_embed_dim, decoder_depth, decoder_num_heads, mlp_ratio, norm_pix_loss,
layer_norm_eps), it builds facebookresearch/mae's ``MaskedAutoencoderViT`` with
that config, calls ``load_state_dict(strict=True)`` (for an encoder-only export:
strict except for the decoder keys, which must then all be absent) and prints
the loss on fixed, seeded inputs, plus the cls feature of
``forward_encoder(imgs, 0)``.  Run the same numbers through Mae.MLNet to compare.

Usage (reference sources as in make_reference_fixtures.py's docstring)::

    /usr/bin/python3 test/Mae.MLNet.Tests/Fixtures/Interop/verify_export.py \\
        --mae-src /tmp/refsrc/mae --timm-src /tmp/refsrc/timm032 \\
        /tmp/export/model.safetensors /tmp/export/config.json [--seed 0] [--batch 2]

Inputs: ``torch.manual_seed(seed)``; imgs = ``torch.randn(batch, in_chans,
img_size, img_size)``; then ``torch.manual_seed(seed + 1)`` right before
``model(imgs, mask_ratio)``, so the masking noise is ``torch.rand(batch, L)``
drawn right after that seed (printed as ``noise[0,:8]``).
"""

import argparse
import json
import os
import struct
import sys
import types
from functools import partial

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import make_reference_fixtures as ref  # noqa: E402

_NP = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4"}
CONFIG_KEYS = ["img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
               "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio",
               "norm_pix_loss", "layer_norm_eps"]


def read_safetensors_any(path):
    raw = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    body = raw[8 + hlen:]
    out = {}
    for name, info in header.items():
        if info["dtype"] not in _NP:
            sys.exit(f"{name}: dtype {info['dtype']} not handled by this tool")
        b, e = info["data_offsets"]
        a = np.frombuffer(body[b:e], dtype=_NP[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights")
    ap.add_argument("config")
    ap.add_argument("--mae-src", required=True)
    ap.add_argument("--timm-src", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    a = ap.parse_args()

    cfg = json.load(open(a.config))
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        sys.exit(f"config lacks {missing}")
    models_mae, _ = ref.import_reference(a.mae_src, a.timm_src)
    torch.set_num_threads(1)
    model = models_mae.MaskedAutoencoderViT(
        img_size=cfg["img_size"], patch_size=cfg["patch_size"], in_chans=cfg["in_chans"],
        embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"],
        decoder_embed_dim=cfg["decoder_embed_dim"], decoder_depth=cfg["decoder_depth"],
        decoder_num_heads=cfg["decoder_num_heads"], mlp_ratio=cfg["mlp_ratio"],
        norm_layer=partial(nn.LayerNorm, eps=float(cfg["layer_norm_eps"])),
        norm_pix_loss=bool(cfg["norm_pix_loss"])).float().eval()
    if cfg["in_chans"] != 3:  # official patchify hard-codes 3 channels (shim 5)
        pf, upf = ref.make_patchify(cfg["in_chans"])
        model.patchify = types.MethodType(pf, model)
        model.unpatchify = types.MethodType(upf, model)

    sd, meta = read_safetensors_any(a.weights)
    print(f"{a.weights}: {len(sd)} tensors, metadata {meta}")
    non_f32 = sorted({str(v.dtype) for v in sd.values()} - {"torch.float32"})
    if non_f32:
        print(f"note: dtypes {non_f32} present; load_state_dict copies into float32 parameters")
    encoder_only = not any(k.startswith("decoder_") or k == "mask_token" for k in sd)
    if encoder_only:
        res = model.load_state_dict(sd, strict=False)
        dec = sorted(k for k in model.state_dict() if k.startswith("decoder_") or k == "mask_token")
        assert not res.unexpected_keys, f"unexpected keys: {res.unexpected_keys}"
        assert sorted(res.missing_keys) == dec, f"missing encoder keys: {sorted(set(res.missing_keys) - set(dec))}"
        print("encoder-only export: loaded strictly apart from the (absent) decoder")
    else:
        model.load_state_dict(sd, strict=True)
        print("load_state_dict(strict=True): OK")

    torch.manual_seed(a.seed)
    imgs = torch.randn(a.batch, cfg["in_chans"], cfg["img_size"], cfg["img_size"])
    L = model.patch_embed.num_patches
    torch.manual_seed(a.seed + 1)
    noise = torch.rand(a.batch, L)
    with torch.no_grad():
        torch.manual_seed(a.seed + 1)
        lat0, _, _ = model.forward_encoder(imgs, 0.0)
        print(f"features_cls[0,:6] = {lat0[0, 0, :6].tolist()}")
        if not encoder_only:
            torch.manual_seed(a.seed + 1)
            loss, pred, mask = model(imgs, mask_ratio=a.mask_ratio)
            print(f"noise[0,:8] = {noise[0, :8].tolist()}")
            print(f"mask[0] = {mask[0].int().tolist()}")
            print(f"loss = {loss.item()!r}")


if __name__ == "__main__":
    main()
