#!/usr/bin/python3
"""Generate reference fixtures for Mae.MLNet from the OFFICIAL MAE code.

This script runs the unmodified ``MaskedAutoencoderViT`` from
facebookresearch/mae (``models_mae.py``) with timm's ViT ``Block`` /
``PatchEmbed`` and writes one hand-written safetensors file per model
configuration (``mae_ref_a.safetensors``, ``mae_ref_b.safetensors``,
``mae_ref_c.safetensors``).  The C# tests load the parameters from these files
into the TorchSharp port, replay the same inputs and noise, and compare
outputs and gradients.

Reference sources (NOT vendored into this repository; pass their locations)
----------------------------------------------------------------------------
* MAE:  https://github.com/facebookresearch/mae
        commit efb2a8062c206524e35e47d04501ed4f544c0ae8 ("Fix typos in instructions")
* timm: https://github.com/huggingface/pytorch-image-models (formerly rwightman/)
        commit 6504a42832cb6687e3f595c37e003ea920268365 ("Version 0.3.2",
        2020-11-30), i.e. timm 0.3.2 -- the version the MAE README pins.
        Only the ``timm/`` folder is needed.
* torch: Debian bookworm ``python3-torch`` (1.13.x, CPU), numpy 1.24,
        run with ``/usr/bin/python3``.  torchvision is NOT needed (see shims).

Exact regeneration commands (from the repository root)::

    mkdir -p /tmp/refsrc/mae /tmp/refsrc/timm032
    git --git-dir=<mae.git> archive efb2a8062c206524e35e47d04501ed4f544c0ae8 \\
        | tar -x -C /tmp/refsrc/mae
    git --git-dir=<pytorch-image-models.git> archive \\
        6504a42832cb6687e3f595c37e003ea920268365 timm | tar -x -C /tmp/refsrc/timm032
    /usr/bin/python3 test/Mae.MLNet.Tests/Fixtures/make_reference_fixtures.py \\
        --mae-src /tmp/refsrc/mae --timm-src /tmp/refsrc/timm032 --skip-grads ab

(``<mae.git>`` / ``<pytorch-image-models.git>`` are clones of the repositories
above.)  The committed files were made with ``--skip-grads ab`` (gradients
only in file C) to keep the fixtures small.  The output is
deterministic: rerunning with the same torch build reproduces the files
byte for byte (checked in the original session).

Shims (none of them changes the numerics)
-----------------------------------------
1. ``torch._six.container_abcs = collections.abc``: timm 0.3.2's
   ``timm/models/layers/helpers.py`` does ``from torch._six import
   container_abcs``, which was removed from torch >= 1.9.
2. timm's package ``__init__`` files are bypassed: ``timm``, ``timm.models``
   and ``timm.data`` are registered as bare packages (empty modules with a
   ``__path__``) so that importing ``timm.models.vision_transformer`` does not
   import every timm model and ``timm.data.transforms`` (which needs
   torchvision, absent here).  ``timm.data`` gets the ImageNet mean/std
   constants from ``timm/data/constants.py``, which is all the ViT module
   imports from it.  The ``Block``/``PatchEmbed``/``Attention``/``Mlp`` code
   that runs is timm 0.3.2's, unmodified.
3. ``np.float = float`` before importing MAE's ``util.pos_embed`` (the alias
   was removed in numpy 1.24; ``np.float`` *was* ``float``, so the sin-cos
   table is still computed in float64 and then cast to float32 by MAE).
4. No ``qk_scale`` wrapper is needed: timm 0.3.2's ``Block`` still accepts
   ``qk_scale`` (MAE passes ``qk_scale=None`` -> scale = head_dim ** -0.5).
5. For ``in_chans != 3`` only (config C): the reference ``patchify`` /
   ``unpatchify`` hard-code 3 channels.  They are replaced on that model
   instance by copies of the official code where the literal 3 becomes
   ``in_chans`` (same einsum ``'nchpwq->nhwpqc'``: inside a patch the layout
   is (row p, column q, channel c), channel fastest).  For in_chans == 3 the
   official methods are used, and the script checks that the shim agrees with
   them bit for bit on 3-channel input.

Model construction
------------------
Each model is built with the official constructor and
``norm_layer=partial(nn.LayerNorm, eps=1e-6)`` like the official presets, then
every trainable parameter is perturbed away from its init (so that a wrong
wiring of any parameter shows up in the comparison):

* LayerNorm weight = 1 + 0.1 * randn, every bias (LayerNorm, Linear, Conv) =
  0.05 * randn, ``cls_token`` / ``mask_token`` = 0.3 * randn,
  Linear / Conv2d weights += 0.02 * randn.
* ``pos_embed`` / ``decoder_pos_embed`` keep the official fixed 2-D sin-cos
  values (requires_grad=False, no gradient is stored for them).

The model is put in ``eval()`` mode.  All dropout / drop-path rates are 0 in
MAE pre-training, so eval and train compute the same thing; eval just
guarantees that nothing consumes the RNG besides the masking noise.

Deterministic masking noise
---------------------------
``random_masking`` draws ``noise = torch.rand(N, L)`` and nothing random happens
before it in ``forward``.  So ``torch.manual_seed(s); noise = torch.rand(N, L)``
followed by ``torch.manual_seed(s); model(imgs, ratio)`` uses exactly that
noise.  The script asserts it: the mask recomputed from ``argsort(noise)``
equals the forward's mask, ``forward_encoder`` under the same seed gives the
same mask / ids_restore, and ``forward_decoder(latent, ids_restore)``
reproduces the forward's ``pred`` bit for bit.  (Ties in ``noise`` are
impossible in practice and also asserted absent.)

File contents (per configuration)
---------------------------------
* ``param.<name>`` -- every entry of ``model.state_dict()`` under its official
  name (e.g. ``param.blocks.0.attn.qkv.weight``, ``param.pos_embed``).
* ``input.imgs`` [N,C,H,W] F32, ``input.noise`` [N,L] F32.
* ``out.loss`` shape [] (0-d scalar, as the reference returns it) F32,
  ``out.pred`` [N,L,p*p*C] F32, ``out.mask`` [N,L] F32 (1 = removed),
  ``out.latent`` [N,1+len_keep,D] F32 (forward_encoder output, cls first),
  ``out.ids_restore`` [N,L] I64,
  ``out.target`` [N,L,p*p*C] F32 = official patchify(imgs) BEFORE norm-pix.
* ``out.features_cls`` [N,D], ``out.features_mean`` [N,D]: from
  ``forward_encoder(imgs, 0.0)`` (no token dropped; the reference still
  shuffles the tokens, but the cls output and the token mean are permutation
  invariant up to float rounding): latent[:,0] and latent[:,1:].mean(1).
* ``grad.<name>`` -- ``.grad`` after ``loss.backward()`` on the forward above,
  for every parameter with requires_grad (pos embeds excluded).
* ``__metadata__`` -- the hyper-parameters and versions (all values strings).

Safetensors is written by hand (no safetensors package): 8-byte little-endian
header length, JSON header (padded with spaces to a multiple of 8 bytes, as the
reference implementation does), then the raw little-endian tensor bytes,
contiguous, in header order.  Each file is read back with the small reader
below and compared with what was meant to be written.
"""

import argparse
import collections.abc
import json
import math
import os
import struct
import sys
import types
from functools import partial

import numpy as np
import torch
import torch.nn as nn

MAE_COMMIT = "efb2a8062c206524e35e47d04501ed4f544c0ae8"
TIMM_COMMIT = "6504a42832cb6687e3f595c37e003ea920268365"
EXPECTED_TIMM_VERSION = "0.3.2"
LAYER_NORM_EPS = 1e-6

# --------------------------------------------------------------------------
# Configurations.  mlp_ratio is 4 everywhere (official presets).
# --------------------------------------------------------------------------
CONFIGS = {
    "a": dict(img_size=32, patch_size=4, in_chans=3,
              embed_dim=64, depth=2, num_heads=4,
              decoder_embed_dim=48, decoder_depth=2, decoder_num_heads=4,
              mlp_ratio=4.0, norm_pix_loss=True,
              mask_ratio=0.75, batch=3, seed=1001),
    "b": dict(img_size=24, patch_size=8, in_chans=3,
              embed_dim=48, depth=2, num_heads=3,
              decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2,
              mlp_ratio=4.0, norm_pix_loss=False,
              mask_ratio=0.6, batch=2, seed=2002),
    "c": dict(img_size=28, patch_size=7, in_chans=1,
              embed_dim=32, depth=1, num_heads=2,
              decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4,
              mlp_ratio=4.0, norm_pix_loss=True,
              mask_ratio=0.75, batch=2, seed=3003),
}


# --------------------------------------------------------------------------
# Importing the reference code (with the shims documented above).
# --------------------------------------------------------------------------
def import_reference(mae_src, timm_src):
    """Returns (models_mae module, timm version string)."""
    mae_src = os.path.abspath(mae_src)
    timm_src = os.path.abspath(timm_src)
    timm_pkg = os.path.join(timm_src, "timm")
    if not os.path.isfile(os.path.join(mae_src, "models_mae.py")):
        sys.exit(f"--mae-src {mae_src}: models_mae.py not found")
    if not os.path.isdir(timm_pkg):
        sys.exit(f"--timm-src {timm_src}: no timm/ package folder inside")

    # Shim 1: torch._six.container_abcs (removed in torch >= 1.9).
    import torch._six
    if not hasattr(torch._six, "container_abcs"):
        torch._six.container_abcs = collections.abc

    # Shim 2: bare packages for timm, timm.models, timm.data (skip their
    # __init__ files, which import torchvision and every model).
    for name, sub in (("timm", ""), ("timm.models", "models"), ("timm.data", "data")):
        mod = types.ModuleType(name)
        mod.__path__ = [os.path.join(timm_pkg, sub) if sub else timm_pkg]
        sys.modules[name] = mod
    import timm.data.constants as timm_constants
    for k in dir(timm_constants):
        if k.isupper():
            setattr(sys.modules["timm.data"], k, getattr(timm_constants, k))
    import timm.version
    timm_version = timm.version.__version__
    if timm_version != EXPECTED_TIMM_VERSION:
        print(f"WARNING: timm version is {timm_version}, expected {EXPECTED_TIMM_VERSION}",
              file=sys.stderr)

    # Shim 3: np.float alias (removed in numpy 1.24) for util/pos_embed.py.
    if not hasattr(np, "float") or np.float is not float:
        np.float = float

    sys.path.insert(0, mae_src)
    import models_mae  # noqa: E402  (official, unmodified)

    # Make sure the Block/PatchEmbed MAE uses really come from --timm-src.
    import timm.models.vision_transformer as vit
    assert models_mae.Block is vit.Block and models_mae.PatchEmbed is vit.PatchEmbed
    assert os.path.abspath(vit.__file__).startswith(timm_pkg), vit.__file__
    return models_mae, timm_version


# --------------------------------------------------------------------------
# Shim 5: channel-generic patchify / unpatchify (copy of the official code
# with the literal 3 replaced by in_chans).
# --------------------------------------------------------------------------
def make_patchify(in_chans):
    def patchify(self, imgs):
        """imgs: (N, C, H, W) -> x: (N, L, patch_size**2 * C)"""
        p = self.patch_embed.patch_size[0]
        assert imgs.shape[2] == imgs.shape[3] and imgs.shape[2] % p == 0

        h = w = imgs.shape[2] // p
        x = imgs.reshape(shape=(imgs.shape[0], in_chans, h, p, w, p))
        x = torch.einsum('nchpwq->nhwpqc', x)
        x = x.reshape(shape=(imgs.shape[0], h * w, p**2 * in_chans))
        return x

    def unpatchify(self, x):
        """x: (N, L, patch_size**2 * C) -> imgs: (N, C, H, W)"""
        p = self.patch_embed.patch_size[0]
        h = w = int(x.shape[1]**.5)
        assert h * w == x.shape[1]

        x = x.reshape(shape=(x.shape[0], h, w, p, p, in_chans))
        x = torch.einsum('nhwpqc->nchpwq', x)
        imgs = x.reshape(shape=(x.shape[0], in_chans, h * p, h * p))
        return imgs

    return patchify, unpatchify


# --------------------------------------------------------------------------
# Hand-written safetensors writer / reader.
# --------------------------------------------------------------------------
_DTYPES = {torch.float32: ("F32", np.float32), torch.int64: ("I64", np.int64)}
_NP_OF = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8")}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch.Tensor) in the order they are stored."""
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        code, _ = _DTYPES[t.dtype]
        data = t.numpy().astype(_NP_OF[code], copy=False).tobytes(order="C")
        assert len(data) == t.numel() * _NP_OF[code].itemsize
        header[name] = {"dtype": code, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # pad to 8-byte alignment
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (ordered dict name -> np.ndarray, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    body = raw[8 + hlen:]
    out = {}
    expected = 0
    for name, info in header.items():  # json keeps file order
        b, e = info["data_offsets"]
        assert b == expected, f"{name}: data not contiguous / not in header order"
        dt = _NP_OF[info["dtype"]]
        n = int(np.prod(info["shape"], dtype=np.int64))
        assert e - b == n * dt.itemsize, name
        out[name] = np.frombuffer(body[b:e], dtype=dt).reshape(info["shape"])
        expected = e
    assert expected == len(body), "trailing bytes after the last tensor"
    return out, metadata


# --------------------------------------------------------------------------
# Fixture generation.
# --------------------------------------------------------------------------
def perturb_parameters(model, gen):
    """Move every trainable parameter away from its init (see docstring)."""
    def randn_like(p):
        return torch.randn(p.shape, generator=gen, dtype=torch.float32)

    with torch.no_grad():
        for _, m in model.named_modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1.0 + 0.1 * randn_like(m.weight))
                m.bias.copy_(0.05 * randn_like(m.bias))
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.add_(0.02 * randn_like(m.weight))
                if m.bias is not None:
                    m.bias.copy_(0.05 * randn_like(m.bias))
        model.cls_token.copy_(0.3 * randn_like(model.cls_token))
        model.mask_token.copy_(0.3 * randn_like(model.mask_token))

    # Every trainable parameter must have been touched by one rule above.
    covered = set()
    for mname, m in model.named_modules():
        if isinstance(m, (nn.LayerNorm, nn.Linear, nn.Conv2d)):
            for pname, _ in m.named_parameters(recurse=False):
                covered.add(f"{mname}.{pname}" if mname else pname)
    covered |= {"cls_token", "mask_token"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= covered, trainable - covered
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"pos_embed", "decoder_pos_embed"}, frozen


def make_images(cfg, gen):
    """randn images plus a little smooth structure (ramps / a sinusoid)."""
    n, c, s = cfg["batch"], cfg["in_chans"], cfg["img_size"]
    imgs = torch.randn((n, c, s, s), generator=gen, dtype=torch.float32)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    for i in range(n):
        for ch in range(c):
            a, b, f = (torch.rand(3, generator=gen) * 2 - 1).tolist()
            imgs[i, ch] += 0.8 * a * xx + 0.8 * b * yy + 0.5 * torch.sin((3 + 2 * f) * math.pi * xx * yy)
    return imgs.contiguous()


def build_fixture(models_mae, key, cfg, meta_common, with_grads=True):
    torch.manual_seed(cfg["seed"])  # seeds the official init (xavier etc.)
    model = models_mae.MaskedAutoencoderViT(
        img_size=cfg["img_size"], patch_size=cfg["patch_size"], in_chans=cfg["in_chans"],
        embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"],
        decoder_embed_dim=cfg["decoder_embed_dim"], decoder_depth=cfg["decoder_depth"],
        decoder_num_heads=cfg["decoder_num_heads"], mlp_ratio=cfg["mlp_ratio"],
        norm_layer=partial(nn.LayerNorm, eps=LAYER_NORM_EPS), norm_pix_loss=cfg["norm_pix_loss"])
    model = model.float().eval()

    c = cfg["in_chans"]
    # Shim 5, and a check that the generic version equals the official one.
    patchify_g, unpatchify_g = make_patchify(c)
    if c != 3:
        model.patchify = types.MethodType(patchify_g, model)
        model.unpatchify = types.MethodType(unpatchify_g, model)
    else:
        probe = torch.randn(2, 3, cfg["img_size"], cfg["img_size"])
        assert torch.equal(patchify_g(model, probe), model.patchify(probe))
        pp = model.patchify(probe)
        assert torch.equal(unpatchify_g(model, pp), model.unpatchify(pp))

    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    perturb_parameters(model, gen)
    imgs = make_images(cfg, gen)

    n = cfg["batch"]
    L = model.patch_embed.num_patches
    ratio = cfg["mask_ratio"]
    len_keep = int(L * (1 - ratio))
    noise_seed = cfg["seed"] + 2

    # The noise random_masking will draw.
    torch.manual_seed(noise_seed)
    noise = torch.rand(n, L)
    assert all(len(set(r.tolist())) == L for r in noise), "tie in noise"

    # Official forward + backward under the same seed.
    model.zero_grad(set_to_none=True)
    torch.manual_seed(noise_seed)
    loss, pred, mask = model(imgs, mask_ratio=ratio)
    loss.backward()

    # forward_encoder under the same seed -> latent, ids_restore.
    with torch.no_grad():
        torch.manual_seed(noise_seed)
        latent, mask_e, ids_restore = model.forward_encoder(imgs, ratio)
        pred_d = model.forward_decoder(latent, ids_restore)

    # Verify the noise -> mask relation exactly as the reference defines it.
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore_ref = torch.argsort(ids_shuffle, dim=1)
    mask_ref = torch.ones(n, L)
    mask_ref[:, :len_keep] = 0
    mask_ref = torch.gather(mask_ref, 1, ids_restore_ref)
    assert torch.equal(mask_ref, mask), "noise replay failed (forward)"
    assert torch.equal(mask_e, mask), "noise replay failed (forward_encoder)"
    assert torch.equal(ids_restore, ids_restore_ref)
    assert torch.equal(pred_d, pred.detach()), "forward_decoder(latent) != forward pred"
    assert latent.shape == (n, 1 + len_keep, cfg["embed_dim"])
    assert int(mask.sum().item()) == n * (L - len_keep)

    target = model.patchify(imgs)
    assert torch.equal(model.unpatchify(target), imgs)

    # Loss recomputed from pred/target/mask (sanity, not bitwise).
    with torch.no_grad():
        t = target
        if cfg["norm_pix_loss"]:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** .5
        l2 = (((pred - t) ** 2).mean(-1) * mask).sum() / mask.sum()
        assert torch.allclose(l2, loss.detach(), rtol=1e-6, atol=0)

    # Features without masking.
    with torch.no_grad():
        torch.manual_seed(noise_seed + 1)
        lat0, mask0, _ = model.forward_encoder(imgs, 0.0)
        assert mask0.sum().item() == 0 and lat0.shape[1] == 1 + L
        feat_cls = lat0[:, 0].clone()
        feat_mean = lat0[:, 1:].mean(1)

    # ---------------- assemble the tensors ----------------
    tensors = []
    for name, v in model.state_dict().items():
        tensors.append(("param." + name, v.float()))
    tensors += [
        ("input.imgs", imgs),
        ("input.noise", noise),
        ("out.loss", loss.detach().reshape(())),
        ("out.pred", pred.detach()),
        ("out.mask", mask.detach().float()),
        ("out.latent", latent),
        ("out.ids_restore", ids_restore.to(torch.int64)),
        ("out.target", target.detach()),
        ("out.features_cls", feat_cls),
        ("out.features_mean", feat_mean),
    ]
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"no gradient for {name}"
            assert p.grad.abs().max().item() > 0, f"all-zero gradient for {name}"
            if with_grads:
                tensors.append(("grad." + name, p.grad.detach()))
        else:
            assert p.grad is None

    meta = dict(meta_common)
    meta.update({
        "config": key,
        "img_size": cfg["img_size"], "patch_size": cfg["patch_size"], "in_chans": c,
        "embed_dim": cfg["embed_dim"], "depth": cfg["depth"], "num_heads": cfg["num_heads"],
        "decoder_embed_dim": cfg["decoder_embed_dim"], "decoder_depth": cfg["decoder_depth"],
        "decoder_num_heads": cfg["decoder_num_heads"], "mlp_ratio": cfg["mlp_ratio"],
        "norm_pix_loss": str(cfg["norm_pix_loss"]).lower(),
        "mask_ratio": cfg["mask_ratio"], "batch": n, "num_patches": L, "len_keep": len_keep,
        "layer_norm_eps": LAYER_NORM_EPS,
        "norm_pix_eps": 1e-6,
        "seed": cfg["seed"],
        "has_grads": str(with_grads).lower(),
        "loss_shape": "[] (0-d scalar, exactly as the reference returns it)",
        "mask_dtype": "F32, 1 = removed (masked), 0 = kept",
        "patchify_shim": ("generic in_chans patchify/unpatchify (literal 3 -> in_chans, "
                          "einsum nchpwq->nhwpqc, channel fastest inside a patch)"
                          if c != 3 else "none (official 3-channel patchify)"),
        "features_note": ("out.features_* come from forward_encoder(imgs, 0.0); tokens "
                          "are shuffled there, cls and token-mean are permutation invariant"),
        "model_mode": "eval (all dropout/drop-path rates are 0 anyway)",
        "gelu": "exact (erf) nn.GELU",
    })
    return tensors, meta, loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mae-src", required=True,
                    help="folder holding facebookresearch/mae (models_mae.py, util/)")
    ap.add_argument("--timm-src", required=True,
                    help="folder holding timm 0.3.2's timm/ package")
    ap.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where to write mae_ref_<cfg>.safetensors (default: next to this script)")
    ap.add_argument("--mae-commit", default=MAE_COMMIT,
                    help="MAE commit the --mae-src tree came from (recorded in metadata)")
    ap.add_argument("--timm-commit", default=TIMM_COMMIT,
                    help="timm commit the --timm-src tree came from (recorded in metadata)")
    ap.add_argument("--configs", default="abc", help="which configurations to write (default abc)")
    ap.add_argument("--skip-grads", default="",
                    help="configurations whose grad.* tensors are NOT written, e.g. 'ab' "
                         "(to save space; default: write gradients for all)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    try:
        torch.use_deterministic_algorithms(True)
        deterministic = "true"
    except Exception as e:  # pragma: no cover
        deterministic = f"unavailable ({e})"
    torch.set_default_dtype(torch.float32)

    models_mae, timm_version = import_reference(args.mae_src, args.timm_src)
    mae_commit = args.mae_commit
    timm_commit = args.timm_commit

    meta_common = {
        "format": "Mae.MLNet reference fixture v1",
        "generator": "test/Mae.MLNet.Tests/Fixtures/make_reference_fixtures.py",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "timm_version": timm_version,
        "timm_commit": timm_commit,
        "mae_commit": mae_commit,
        "deterministic_algorithms": deterministic,
        "num_threads": torch.get_num_threads(),
        "shims": ("torch._six.container_abcs=collections.abc; timm/__init__ bypassed "
                  "(bare packages, no torchvision); np.float=float"),
    }

    os.makedirs(args.out_dir, exist_ok=True)
    for key in args.configs:
        cfg = CONFIGS[key]
        tensors, meta, loss = build_fixture(models_mae, key, cfg, meta_common,
                                           with_grads=key not in args.skip_grads)
        path = os.path.join(args.out_dir, f"mae_ref_{key}.safetensors")
        write_safetensors(path, tensors, meta)

        # Read back and verify every tensor and the metadata.
        back, back_meta = read_safetensors(path)
        assert list(back.keys()) == [n for n, _ in tensors]
        for name, t in tensors:
            a = t.detach().cpu().numpy()
            assert back[name].shape == a.shape and back[name].dtype == a.dtype.newbyteorder("<"), name
            assert np.array_equal(back[name], a), name
        assert back_meta == {k: str(v) for k, v in meta.items()}
        print(f"{path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors, loss={loss!r}")


if __name__ == "__main__":
    main()
