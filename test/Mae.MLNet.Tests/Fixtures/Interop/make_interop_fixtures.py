#!/usr/bin/python3
"""Generate checkpoint-interop fixtures for Mae.MLNet (issue 3) from the OFFICIAL MAE code.

Runs the unmodified facebookresearch/mae ``models_mae.py`` / ``models_vit.py`` /
``util/pos_embed.py`` / ``util/lr_sched.py`` (with timm 0.3.2) under Debian's
``python3-torch`` 1.13 and writes, next to this script:

* the public checkpoint layouts (official training checkpoint, visualize /
  full file, encoder-only file, fine-tuned file, timm safetensors, Hugging Face
  ViTMAE ``model.safetensors`` + ``pytorch_model.bin`` + ``config.json``),
* hostile and broken files a loader must refuse,
* ``expected.safetensors`` with the official code's outputs for those weights.

See README.md in this folder for the file-by-file description and the
official -> Hugging Face name mapping.

The reference sources, shims and hand-written safetensors writer are those of
``../make_reference_fixtures.py`` (imported, not copied); read its docstring for
the exact commits (MAE efb2a80, timm 0.3.2 = 6504a42) and the shims.

Exact regeneration commands (from the repository root)::

    mkdir -p /tmp/refsrc/mae /tmp/refsrc/timm032
    git --git-dir=<mae.git> archive efb2a8062c206524e35e47d04501ed4f544c0ae8 \\
        | tar -x -C /tmp/refsrc/mae
    git --git-dir=<pytorch-image-models.git> archive \\
        6504a42832cb6687e3f595c37e003ea920268365 timm | tar -x -C /tmp/refsrc/timm032
    /usr/bin/python3 test/Mae.MLNet.Tests/Fixtures/Interop/make_interop_fixtures.py \\
        --mae-src /tmp/refsrc/mae --timm-src /tmp/refsrc/timm032

(``/usr/bin/python3`` = Debian bookworm's python with ``python3-torch`` 1.13 and
numpy 1.24; no torchvision, transformers or safetensors package is needed.)
The output is deterministic with the same torch build, except not_a_zip.pth
(the legacy format names its storages by memory address).

Nothing hostile is ever executed: the hostile pickles are only *written*
(pickling an object whose ``__reduce__`` names ``os.system`` does not call it),
and they are read back only with ``torch.load(..., weights_only=True)``, which
must refuse them, and with ``pickletools`` (static disassembly).
"""

import argparse
import ast
import copy
import io
import json
import os
import pickle
import pickletools
import struct
import sys
import zipfile
from collections import OrderedDict
from functools import partial

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # ../ holds make_reference_fixtures.py
import make_reference_fixtures as ref  # noqa: E402

# --------------------------------------------------------------------------
# Model configurations.  Widths are 24 (not 32) so that the whole folder,
# whose largest file is the training checkpoint with its AdamW moments, stays
# under 1.5 MB: at width 32 the folder is about 2.3 MB.
# --------------------------------------------------------------------------
ARCH = dict(img_size=16, patch_size=4, in_chans=3,
            embed_dim=24, depth=2, num_heads=2,
            decoder_embed_dim=24, decoder_depth=1, decoder_num_heads=2,
            mlp_ratio=4.0, norm_pix_loss=True)
MODEL_I = dict(ARCH, layer_norm_eps=1e-6, seed=4004)
MODEL_H = dict(ARCH, layer_norm_eps=1e-12, seed=5005)
MASK_RATIO = 0.75
BATCH = 2
NOISE_SEED = 4242          # seed replayed for the masking noise (see ../make_reference_fixtures.py)
FT_NUM_CLASSES = 5
POS_PERTURB = 0.1          # interp source pos_embed = official pos_embed + 0.1 * randn
HOSTILE_SHELL = "echo MAE.MLNet hostile fixture: os.system was called"
HOSTILE_EVAL = "print('MAE.MLNet hostile fixture: eval was called')"


def build_mae(models_mae, cfg):
    torch.manual_seed(cfg["seed"])
    m = models_mae.MaskedAutoencoderViT(
        img_size=cfg["img_size"], patch_size=cfg["patch_size"], in_chans=cfg["in_chans"],
        embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"],
        decoder_embed_dim=cfg["decoder_embed_dim"], decoder_depth=cfg["decoder_depth"],
        decoder_num_heads=cfg["decoder_num_heads"], mlp_ratio=cfg["mlp_ratio"],
        norm_layer=partial(nn.LayerNorm, eps=cfg["layer_norm_eps"]),
        norm_pix_loss=cfg["norm_pix_loss"]).float()
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    ref.perturb_parameters(m, gen)
    for mod in m.modules():
        if isinstance(mod, nn.LayerNorm):
            assert mod.eps == cfg["layer_norm_eps"]
    return m, gen


def run_mae(model, imgs, L):
    """Official forward with replayed noise; returns (noise, loss, pred, mask)."""
    model.eval()
    torch.manual_seed(NOISE_SEED)
    noise = torch.rand(BATCH, L)
    with torch.no_grad():
        torch.manual_seed(NOISE_SEED)
        loss, pred, mask = model(imgs, mask_ratio=MASK_RATIO)
    len_keep = int(L * (1 - MASK_RATIO))
    ids_restore = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    mask_ref = torch.ones(BATCH, L)
    mask_ref[:, :len_keep] = 0
    mask_ref = torch.gather(mask_ref, 1, ids_restore)
    assert torch.equal(mask_ref, mask), "noise replay failed"
    return noise, loss, pred, mask


def encoder_features(model, imgs):
    with torch.no_grad():
        torch.manual_seed(NOISE_SEED + 1)
        lat0, mask0, _ = model.forward_encoder(imgs, 0.0)
    assert mask0.sum().item() == 0
    return lat0[:, 0].clone(), lat0[:, 1:].mean(1)


# --------------------------------------------------------------------------
# Official argparse.Namespace: main_pretrain.get_args_parser() taken from the
# official source with ast (main_pretrain.py itself imports torchvision and
# tensorboard, absent here), then the fields main() adds.
# --------------------------------------------------------------------------
def official_pretrain_args(mae_src, argv):
    path = os.path.join(mae_src, "main_pretrain.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_args_parser"]
    assert len(fn) == 1
    ns = {"argparse": argparse}
    exec(compile(ast.Module(body=fn, type_ignores=[]), path, "exec"), ns)
    args = ns["get_args_parser"]().parse_args(argv)
    args.distributed = False                       # misc.init_distributed_mode, single process
    eff_batch_size = args.batch_size * args.accum_iter * 1
    if args.lr is None:                            # main_pretrain.main
        args.lr = args.blr * eff_batch_size / 256
    return args


# --------------------------------------------------------------------------
# Name mappings.
# --------------------------------------------------------------------------
def is_encoder_key(k):
    return not (k.startswith("decoder_") or k == "mask_token")


_BLOCK_MAP = [("norm1.", "layernorm_before."), ("attn.proj.", "attention.output.dense."),
              ("norm2.", "layernorm_after."), ("mlp.fc1.", "intermediate.dense."),
              ("mlp.fc2.", "output.dense.")]


def to_hf(sd, cfg):
    """Official MAE state dict -> Hugging Face ViTMAEForPreTraining names (see README)."""
    out = OrderedDict()

    def block(prefix_in, prefix_out, rest, v, dim):
        if rest.startswith("attn.qkv."):
            kind = rest[len("attn.qkv."):]  # weight | bias
            assert v.shape[0] == 3 * dim
            for j, qkv in enumerate(("query", "key", "value")):
                out[f"{prefix_out}attention.attention.{qkv}.{kind}"] = v[j * dim:(j + 1) * dim].clone()
            return
        for a, b in _BLOCK_MAP:
            if rest.startswith(a):
                out[prefix_out + b + rest[len(a):]] = v.clone()
                return
        raise KeyError(prefix_in + rest)

    for k, v in sd.items():
        if k == "cls_token":
            out["vit.embeddings.cls_token"] = v.clone()
        elif k == "pos_embed":
            out["vit.embeddings.position_embeddings"] = v.clone()
        elif k.startswith("patch_embed.proj."):
            out["vit.embeddings.patch_embeddings.projection." + k.split(".")[-1]] = v.clone()
        elif k.startswith("blocks."):
            i, rest = k.split(".", 2)[1:]
            block(f"blocks.{i}.", f"vit.encoder.layer.{i}.", rest, v, cfg["embed_dim"])
        elif k.startswith("norm."):
            out["vit.layernorm." + k.split(".")[-1]] = v.clone()
        elif k.startswith("decoder_blocks."):
            i, rest = k.split(".", 2)[1:]
            block(f"decoder_blocks.{i}.", f"decoder.decoder_layers.{i}.", rest, v,
                  cfg["decoder_embed_dim"])
        elif k in ("mask_token", "decoder_pos_embed") or k.startswith(
                ("decoder_embed.", "decoder_norm.", "decoder_pred.")):
            out["decoder." + k] = v.clone()
        else:
            raise KeyError(k)
    assert len(set(out)) == len(out)
    return out


def from_hf(hf):
    """Inverse of to_hf (used only to check that the mapping round-trips)."""
    inv = {}
    blocks = (("vit.encoder.layer.", "blocks."), ("decoder.decoder_layers.", "decoder_blocks."))
    for k, v in hf.items():
        pre = [(h, o) for h, o in blocks if k.startswith(h)]
        if pre:
            h, o = pre[0]
            i, rest = k[len(h):].split(".", 1)
            if rest.startswith("attention.attention."):
                which, kind = rest.split(".")[2:]
                if which == "query":
                    base = f"{h}{i}.attention.attention."
                    inv[f"{o}{i}.attn.qkv.{kind}"] = torch.cat(
                        [hf[base + w + "." + kind] for w in ("query", "key", "value")], 0)
                continue
            m = [(a, b) for a, b in _BLOCK_MAP if rest.startswith(b)]
            assert len(m) == 1, k
            inv[f"{o}{i}.{m[0][0]}{rest[len(m[0][1]):]}"] = v
            continue
        k2 = {"vit.embeddings.cls_token": "cls_token",
              "vit.embeddings.position_embeddings": "pos_embed"}.get(k)
        if k2 is None:
            k2 = (k.replace("vit.embeddings.patch_embeddings.projection.", "patch_embed.proj.")
                  .replace("vit.layernorm.", "norm."))
            assert k2.startswith(("patch_embed.", "norm.", "decoder.")), k
            if k2.startswith("decoder."):
                k2 = k2[len("decoder."):]
        inv[k2] = v
    return inv


def hf_config(cfg):
    # Key set as in facebook/vit-mae-* config.json (transformers ViTMAEConfig).
    return OrderedDict([
        ("architectures", ["ViTMAEForPreTraining"]),
        ("attention_probs_dropout_prob", 0.0),
        ("decoder_hidden_size", cfg["decoder_embed_dim"]),
        ("decoder_intermediate_size", int(cfg["decoder_embed_dim"] * cfg["mlp_ratio"])),
        ("decoder_num_attention_heads", cfg["decoder_num_heads"]),
        ("decoder_num_hidden_layers", cfg["decoder_depth"]),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.0),
        ("hidden_size", cfg["embed_dim"]),
        ("image_size", cfg["img_size"]),
        ("initializer_range", 0.02),
        ("intermediate_size", int(cfg["embed_dim"] * cfg["mlp_ratio"])),
        ("layer_norm_eps", cfg["layer_norm_eps"]),
        ("mask_ratio", MASK_RATIO),
        ("model_type", "vit_mae"),
        ("norm_pix_loss", cfg["norm_pix_loss"]),
        ("num_attention_heads", cfg["num_heads"]),
        ("num_channels", cfg["in_chans"]),
        ("num_hidden_layers", cfg["depth"]),
        ("patch_size", cfg["patch_size"]),
        ("qkv_bias", True),
        ("torch_dtype", "float32"),
        ("transformers_version", "4.x (hand-written by make_interop_fixtures.py)"),
    ])


# --------------------------------------------------------------------------
# Hostile pickles.  A pure-Python Pickler whose save_global writes the
# requested module/name literally (the C pickler would write "posix system"
# for os.system on Linux and, at protocol 2, "__builtin__ eval").
# --------------------------------------------------------------------------
class _Payload:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))  # NOT called here; only recorded by pickle


def _literal_global_pickle_module(literal):
    """literal: {callable: (module, name)}."""
    class Pickler(pickle._Pickler):
        def save_global(self, obj, name=None):
            for f, (mod, nm) in literal.items():
                if obj is f:
                    self.write(pickle.GLOBAL + mod.encode() + b"\n" + nm.encode() + b"\n")
                    self.memoize(obj)
                    return
            return super().save_global(obj, name)

    mod = type(sys)("literal_pickle")
    mod.Pickler = Pickler
    mod.Unpickler = pickle.Unpickler
    mod.load = pickle.load
    mod.__name__ = "pickle"
    return mod


def pickle_globals(pkl_bytes):
    """Static list of (module, name) globals in a pickle (no execution)."""
    found, strings = [], []
    for op, arg, _ in pickletools.genops(pkl_bytes):
        if op.name == "GLOBAL":
            found.append(tuple(arg.split(" ", 1)))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.append((strings[-2], strings[-1]))
    return found


def zip_pickle_bytes(path):
    with zipfile.ZipFile(path) as z:
        name = [n for n in z.namelist() if n.endswith("/data.pkl")]
        assert len(name) == 1
        return z.read(name[0])


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------
def save(obj, path, **kw):
    torch.save(obj, path, **kw)
    return path


def clone_sd(sd, keys=None, dtype=None):
    out = OrderedDict()
    for k, v in sd.items():
        if keys is None or k in keys:
            v = v.detach().clone()
            out[k] = v if dtype is None else v.to(dtype)
    return out


def assert_sd_equal(a, b):
    assert list(a.keys()) == list(b.keys()), (list(a.keys()), list(b.keys()))
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


def meta_of(cfg, prefix):
    return {f"{prefix}.{k}": (str(v).lower() if isinstance(v, bool) else v) for k, v in cfg.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mae-src", required=True)
    ap.add_argument("--timm-src", required=True)
    ap.add_argument("--out-dir", default=HERE)
    args_cli = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    models_mae, timm_version = ref.import_reference(args_cli.mae_src, args_cli.timm_src)
    # ref.import_reference registers timm / timm.models as bare packages in
    # sys.modules; models_vit.py reaches the ViT as the attribute chain
    # timm.models.vision_transformer, so link the attributes.
    sys.modules["timm"].models = sys.modules["timm.models"]
    import models_vit                     # official (from --mae-src)
    import util.pos_embed as pos_embed_mod  # official interpolate_pos_embed
    import util.lr_sched as lr_sched       # official LR schedule
    import timm.optim.optim_factory as _  # noqa: F401  (see below)

    out = args_cli.out_dir
    os.makedirs(os.path.join(out, "hf"), exist_ok=True)
    written = []

    def P(name):
        p = os.path.join(out, name)
        written.append(p)
        return p

    # ------------------------------------------------------------------
    # Model i, one real AdamW step as in main_pretrain / engine_pretrain.
    # ------------------------------------------------------------------
    model_i, gen_i = build_mae(models_mae, MODEL_I)
    imgs = ref.make_images(dict(batch=BATCH, in_chans=3, img_size=ARCH["img_size"]), gen_i)
    L = model_i.patch_embed.num_patches

    train_args = official_pretrain_args(args_cli.mae_src, [
        "--model", "mae_vit_interop_i", "--input_size", str(ARCH["img_size"]),
        "--mask_ratio", str(MASK_RATIO), "--norm_pix_loss", "--batch_size", str(BATCH),
        "--blr", "1.5e-4", "--weight_decay", "0.05", "--epochs", "10", "--warmup_epochs", "2",
        "--data_path", "./data/tiny_imagenet", "--output_dir", "./output_dir",
        "--log_dir", "./output_dir", "--device", "cpu"])
    epoch = 3
    param_groups = sys.modules["timm.optim.optim_factory"].add_weight_decay(
        model_i, train_args.weight_decay)
    optimizer = torch.optim.AdamW(param_groups, lr=train_args.lr, betas=(0.9, 0.95))
    model_i.train()
    lr_sched.adjust_learning_rate(optimizer, 0 / 4 + epoch, train_args)  # data_iter_step/len + epoch
    torch.manual_seed(777)
    train_imgs = torch.randn(BATCH, 3, ARCH["img_size"], ARCH["img_size"])
    loss_train, _, _ = model_i(train_imgs, mask_ratio=train_args.mask_ratio)
    optimizer.zero_grad()
    loss_train.backward()
    optimizer.step()
    optimizer.zero_grad()
    model_i.eval()
    opt_sd = optimizer.state_dict()
    assert len(opt_sd["param_groups"]) == 2 and len(opt_sd["state"]) == sum(
        p.requires_grad for p in model_i.parameters())
    scaler_sd = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                 "growth_interval": 2000, "_growth_tracker": 0}

    sd_i = clone_sd(model_i.state_dict())
    noise, loss_i, pred_i, mask_i = run_mae(model_i, imgs, L)
    fcls_i, fmean_i = encoder_features(model_i, imgs)

    # 1. official training checkpoint (util/misc.py save_model layout).
    save({"model": sd_i, "optimizer": opt_sd, "epoch": epoch, "scaler": scaler_sd,
          "args": train_args}, P("official_checkpoint.pth"))
    # 2. visualize / full file.
    save({"model": clone_sd(sd_i)}, P("official_visualize.pth"))

    # Perturbed pos_embed (the official one is a fixed sin-cos table, so
    # interpolating it would test little).
    pe_gen = torch.Generator().manual_seed(6006)
    pos_src = (sd_i["pos_embed"] + POS_PERTURB * torch.randn(
        sd_i["pos_embed"].shape, generator=pe_gen)).contiguous()
    enc_keys = [k for k in sd_i if is_encoder_key(k)]
    sd_enc = clone_sd(sd_i, enc_keys)
    sd_enc["pos_embed"] = pos_src.clone()
    # 3. encoder-only file (with the perturbed pos_embed).
    save({"model": sd_enc}, P("official_encoder_only.pth"))

    # Features of the encoder-only weights at the native size (img 16).
    model_enc = copy.deepcopy(model_i)
    with torch.no_grad():
        model_enc.pos_embed.copy_(pos_src)
    ecls, emean = encoder_features(model_enc, imgs)

    # 4. fine-tuned model (models_vit.VisionTransformer, global_pool=True).
    def make_vit(img_size, global_pool, num_classes):
        torch.manual_seed(8008)
        return models_vit.VisionTransformer(
            global_pool=global_pool, img_size=img_size, patch_size=ARCH["patch_size"],
            in_chans=3, num_classes=num_classes, embed_dim=ARCH["embed_dim"], depth=ARCH["depth"],
            num_heads=ARCH["num_heads"], mlp_ratio=ARCH["mlp_ratio"], qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=MODEL_I["layer_norm_eps"])).float().eval()

    ft = make_vit(ARCH["img_size"], True, FT_NUM_CLASSES)
    assert not hasattr(ft, "norm") and hasattr(ft, "fc_norm")
    msg = ft.load_state_dict({k: v for k, v in sd_i.items()
                              if is_encoder_key(k) and not k.startswith("norm.")}, strict=False)
    assert sorted(msg.missing_keys) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"], msg
    assert not msg.unexpected_keys
    g = torch.Generator().manual_seed(9009)
    with torch.no_grad():
        ft.fc_norm.weight.copy_(1.0 + 0.1 * torch.randn(ft.fc_norm.weight.shape, generator=g))
        ft.fc_norm.bias.copy_(0.05 * torch.randn(ft.fc_norm.bias.shape, generator=g))
        ft.head.weight.copy_(0.2 * torch.randn(ft.head.weight.shape, generator=g))
        ft.head.bias.copy_(0.05 * torch.randn(ft.head.bias.shape, generator=g))
        ft_features = ft.forward_features(imgs)
        ft_logits = ft(imgs)
        assert torch.equal(ft.head(ft_features), ft_logits)
        # global pool + fc_norm over the MAE encoder's blocks (no final norm)
    sd_ft = clone_sd(ft.state_dict())
    save({"model": sd_ft}, P("official_finetuned.pth"))

    # 5. timm *.mae safetensors (same names as official encoder; sin-cos pos_embed of model i).
    timm_sd = clone_sd(sd_i, enc_keys)
    ref.write_safetensors(P("timm_encoder.safetensors"), list(timm_sd.items()), {"format": "pt"})

    # ------------------------------------------------------------------
    # Model h (eps 1e-12) -> Hugging Face files.
    # ------------------------------------------------------------------
    model_h, _ = build_mae(models_mae, MODEL_H)
    model_h.eval()
    sd_h = clone_sd(model_h.state_dict())
    noise_h, loss_h, pred_h, mask_h = run_mae(model_h, imgs, L)
    assert torch.equal(noise_h, noise)
    hcls, _ = encoder_features(model_h, imgs)
    hf_sd = to_hf(sd_h, MODEL_H)
    back_h = from_hf(hf_sd)
    assert_sd_equal(OrderedDict((k, back_h[k]) for k in sd_h), sd_h)
    assert sorted(back_h) == sorted(sd_h)
    ref.write_safetensors(P("hf/model.safetensors"), list(hf_sd.items()), {"format": "pt"})
    save(hf_sd, P("hf/pytorch_model.bin"))
    with open(P("hf/config.json"), "w") as f:
        json.dump(hf_config(MODEL_H), f, indent=2)
        f.write("\n")

    # ------------------------------------------------------------------
    # Position-embedding interpolation (official util/pos_embed.py).
    # ------------------------------------------------------------------
    interp = {}
    for size in (24, 8):
        tgt = make_vit(size, False, 0)
        ckpt = clone_sd(sd_enc)
        pos_embed_mod.interpolate_pos_embed(tgt, ckpt)
        msg = tgt.load_state_dict(ckpt, strict=False)
        assert not msg.missing_keys and not msg.unexpected_keys, msg
        n = (size // ARCH["patch_size"]) ** 2
        assert tgt.pos_embed.shape == (1, 1 + n, ARCH["embed_dim"])
        assert torch.equal(tgt.pos_embed[:, :1], pos_src[:, :1])
        interp[size] = (tgt, tgt.pos_embed.detach().clone())
    g24 = torch.Generator().manual_seed(1212)
    imgs24 = ref.make_images(dict(batch=BATCH, in_chans=3, img_size=24), g24)
    with torch.no_grad():
        feat24 = interp[24][0].forward_features(imgs24)  # norm(x)[:, 0], as forward_encoder's cls

    # ------------------------------------------------------------------
    # 7. hostile / broken files.
    # ------------------------------------------------------------------
    small = OrderedDict([("cls_token", sd_i["cls_token"].clone()),
                         ("pos_embed", sd_i["pos_embed"].clone())])
    save({"model": small, "args": _Payload(os.system, HOSTILE_SHELL)}, P("hostile_os_system.pth"),
         pickle_module=_literal_global_pickle_module({os.system: ("os", "system")}))
    save({"model": small, "args": _Payload(eval, HOSTILE_EVAL)}, P("hostile_builtins_eval.pth"),
         pickle_module=_literal_global_pickle_module({eval: ("builtins", "eval")}))

    vis = open(os.path.join(out, "official_visualize.pth"), "rb").read()
    with open(P("truncated.pth"), "wb") as f:
        f.write(vis[:int(len(vis) * 0.6)])

    # oversized claim: the storage of blocks.0.attn.qkv.weight keeps its pickle
    # record (numel 3072) but its zip entry holds only the first half of the bytes.
    qkv_index = list(sd_i.keys()).index("blocks.0.attn.qkv.weight")
    qkv_bytes = sd_i["blocks.0.attn.qkv.weight"].numel() * 4
    src = zipfile.ZipFile(os.path.join(out, "official_visualize.pth"))
    entry = [n for n in src.namelist() if n.endswith(f"/data/{qkv_index}")]
    assert len(entry) == 1 and src.getinfo(entry[0]).file_size == qkv_bytes
    with zipfile.ZipFile(P("oversized_claim.pth"), "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == entry[0]:
                data = data[:len(data) // 2]
            zi = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            zi.compress_type = zipfile.ZIP_STORED
            dst.writestr(zi, data)
    src.close()

    sd_int = clone_sd(sd_i)
    sd_int["blocks.0.attn.qkv.weight"] = torch.round(sd_i["blocks.0.attn.qkv.weight"] * 1000).to(torch.int64)
    save({"model": sd_int}, P("int_weights.pth"))
    sd_half = clone_sd(sd_i, dtype=torch.float16)
    save({"model": sd_half}, P("fp16_weights.pth"))
    save({"model": clone_sd(sd_enc)}, P("not_a_zip.pth"), _use_new_zipfile_serialization=False)

    # ------------------------------------------------------------------
    # 8. expected.safetensors
    # ------------------------------------------------------------------
    with torch.no_grad():
        fp16_model = copy.deepcopy(model_i)
        fp16_model.load_state_dict({k: v.float() for k, v in sd_half.items()})
        _, loss_fp16, _, _ = run_mae(fp16_model, imgs, L)
    tensors = [
        ("input.imgs", imgs), ("input.noise", noise),
        ("i.loss", loss_i.reshape(())), ("i.pred", pred_i), ("i.mask", mask_i.float()),
        ("i.features_cls", fcls_i), ("i.features_mean", fmean_i),
        ("enc.features_cls", ecls), ("enc.features_mean", emean),
        ("ft.features", ft_features), ("ft.logits", ft_logits),
        ("h.loss", loss_h.reshape(())), ("h.pred", pred_h), ("h.mask", mask_h.float()),
        ("h.features_cls", hcls),
        ("interp.source_pos_embed", pos_src),
        ("interp.pos_embed_24", interp[24][1]), ("interp.pos_embed_8", interp[8][1]),
        ("input.imgs_24", imgs24), ("interp.features_cls_24", feat24),
        ("fp16.loss", loss_fp16.reshape(())),
    ]
    meta = {
        "format": "Mae.MLNet interop fixture v1",
        "generator": "test/Mae.MLNet.Tests/Fixtures/Interop/make_interop_fixtures.py",
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python_version": sys.version.split()[0], "timm_version": timm_version,
        "timm_commit": ref.TIMM_COMMIT, "mae_commit": ref.MAE_COMMIT,
        "mask_ratio": MASK_RATIO, "batch": BATCH, "num_patches": L,
        "len_keep": int(L * (1 - MASK_RATIO)), "norm_pix_eps": 1e-6,
        "ft.num_classes": FT_NUM_CLASSES, "ft.global_pool": "true",
        "interp.mode": "bicubic, align_corners=False, cls token kept (official interpolate_pos_embed)",
        "interp.source": "official_encoder_only.pth pos_embed = model i pos_embed + 0.1*randn",
        "enc.note": "enc.* = model i encoder with the perturbed pos_embed of official_encoder_only.pth, img 16",
        "features_note": "features_cls/mean = forward_encoder(imgs, 0.0) latent[:,0] / latent[:,1:].mean(1)",
        "interp.features_cls_24": "models_vit.VisionTransformer(img 24, global_pool=False) after "
                                  "interpolate_pos_embed(official_encoder_only): forward_features(input.imgs_24) = norm(x)[:,0]",
        "fp16.loss": "loss of model i with every weight rounded to float16 and upcast (fp16_weights.pth)",
        "noise": "input.noise is what random_masking draws; loss/pred/mask used exactly this noise",
    }
    meta.update(meta_of(MODEL_I, "i"))
    meta.update(meta_of(MODEL_H, "h"))
    ref.write_safetensors(P("expected.safetensors"), tensors, meta)

    verify(out, tensors, meta, sd_i, sd_enc, sd_ft, timm_sd, hf_sd, sd_int, sd_half,
           opt_sd, train_args, vis, qkv_index)

    total = 0
    for p in sorted(set(written)):
        s = os.path.getsize(p)
        total += s
        print(f"{os.path.relpath(p, out):32s} {s:9d}")
    print(f"{'total (generated files)':32s} {total:9d}")
    print(f"loss i = {loss_i.item()!r}, loss h = {loss_h.item()!r}, fp16 loss = {loss_fp16.item()!r}")


# --------------------------------------------------------------------------
# Read everything back.
# --------------------------------------------------------------------------
def verify(out, tensors, meta, sd_i, sd_enc, sd_ft, timm_sd, hf_sd, sd_int, sd_half,
           opt_sd, train_args, vis, qkv_index):
    J = partial(os.path.join, out)

    def load_safe(name):
        return torch.load(J(name), map_location="cpu", weights_only=True)

    # Legitimate files: all but the training checkpoint load with
    # weights_only=True.  The checkpoint does not (torch 1.13's weights-only
    # unpickler has no BINFLOAT opcode, and argparse.Namespace is not on its
    # allow-list), so it is read back with a restricted unpickler: the
    # weights_only globals plus argparse.Namespace.
    ck = torch.load(J("official_checkpoint.pth"), map_location="cpu",
                    pickle_module=_allow_namespace_pickle_module())
    assert list(ck.keys()) == ["model", "optimizer", "epoch", "scaler", "args"]
    assert_sd_equal(ck["model"], sd_i)
    assert ck["epoch"] == 3 and ck["scaler"]["scale"] == 65536.0
    assert vars(ck["args"]) == vars(train_args)
    assert ck["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95)
    for k, st in ck["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg"], opt_sd["state"][k]["exp_avg"])
    try:
        load_safe("official_checkpoint.pth")
        ns_refused = "no"
    except pickle.UnpicklingError as e:
        ns_refused = str(e).splitlines()[0]
    print("official_checkpoint.pth with weights_only=True:", ns_refused)

    assert_sd_equal(load_safe("official_visualize.pth")["model"], sd_i)
    assert_sd_equal(load_safe("official_encoder_only.pth")["model"], sd_enc)
    assert_sd_equal(load_safe("official_finetuned.pth")["model"], sd_ft)
    assert_sd_equal(load_safe("hf/pytorch_model.bin"), hf_sd)
    assert_sd_equal(load_safe("int_weights.pth")["model"], sd_int)
    assert_sd_equal(load_safe("fp16_weights.pth")["model"], sd_half)
    assert_sd_equal(load_safe("not_a_zip.pth")["model"], sd_enc)
    assert not zipfile.is_zipfile(J("not_a_zip.pth"))
    for name, sd in (("timm_encoder.safetensors", timm_sd), ("hf/model.safetensors", hf_sd)):
        back, md = ref.read_safetensors(J(name))
        assert md == {"format": "pt"} and list(back) == list(sd)
        for k in sd:
            assert np.array_equal(back[k], sd[k].numpy()), k
    cfg = json.load(open(J("hf/config.json")))
    assert cfg["layer_norm_eps"] == 1e-12 and cfg["model_type"] == "vit_mae"

    back, md = ref.read_safetensors(J("expected.safetensors"))
    assert list(back) == [n for n, _ in tensors] and md == {k: str(v) for k, v in meta.items()}
    for n, t in tensors:
        assert np.array_equal(back[n], t.detach().numpy()), n

    # Hostile: refused by weights_only=True, and statically they do name the global.
    for name, glob in (("hostile_os_system.pth", ("os", "system")),
                       ("hostile_builtins_eval.pth", ("builtins", "eval"))):
        g = pickle_globals(zip_pickle_bytes(J(name)))
        assert glob in g, g
        try:
            load_safe(name)
            raise AssertionError(f"{name} was NOT refused by weights_only=True")
        except pickle.UnpicklingError as e:
            print(f"{name}: refused by weights_only=True: {str(e).splitlines()[0]}")
        print(f"  globals in its pickle: {sorted(set(g))}")

    # Broken files.
    for name in ("truncated.pth", "oversized_claim.pth"):
        try:
            r = load_safe(name)
            if name == "oversized_claim.pth":
                t = r["model"]["blocks.0.attn.qkv.weight"]
                print(f"{name}: torch 1.13 LOADED it without error! qkv shape {tuple(t.shape)}, "
                      f"storage size {t.storage().size()}")
            else:
                raise AssertionError(f"{name} loaded")
        except AssertionError:
            raise
        except Exception as e:  # what torch itself says
            print(f"{name}: torch.load refuses: {type(e).__name__}: {str(e).splitlines()[0]}")
    assert len(open(J("truncated.pth"), "rb").read()) == int(len(vis) * 0.6)
    with zipfile.ZipFile(J("oversized_claim.pth")) as z:
        e = [n for n in z.namelist() if n.endswith(f"/data/{qkv_index}")][0]
        print(f"oversized_claim.pth: {e} holds {z.getinfo(e).file_size} bytes, pickle claims "
              f"{sd_i['blocks.0.attn.qkv.weight'].numel() * 4}")


def _allow_namespace_pickle_module():
    """Restricted unpickler for reading back our own training checkpoint:
    torch 1.13's weights_only allow-list (tensors, storages, OrderedDict) plus
    argparse.Namespace; any other global raises."""
    from torch import _weights_only_unpickler as wo
    allowed = dict(wo._get_allowed_globals())
    allowed["argparse.Namespace"] = argparse.Namespace

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            key = f"{module}.{name}"
            if key not in allowed:
                raise pickle.UnpicklingError(f"global {key} is not allowed")
            return allowed[key]

    mod = type(sys)("ns_pickle")
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    mod.__name__ = "pickle"
    return mod


if __name__ == "__main__":
    main()
