#!/usr/bin/python3
"""Reference fixtures for the ConvNeXt V2 / FCMAE port, from timm's and the official ConvNeXt-V2 code.

Writes (into this folder unless --out-dir):
* convnextv2_a.safetensors -- timm ``ConvNeXt`` as ``convnextv2_*`` builds it (use_grn, no layer scale), conv_mlp=True
  (1x1-conv MLP weights, as atto..nano), 3 channels, 64 px, 5 classes: weights, images, feature map, pooled
  features, logits, and the gradients of ``(logits * probe).sum()``.
* convnextv2_b.safetensors -- the same with conv_mlp=False (Linear MLP weights, as tiny and larger), 1 channel,
  3 classes, no gradients.
* fcmae_f.safetensors -- the official FCMAE (models/fcmae.py: gen_random_mask with the stored noise,
  upsample_mask, forward_decoder with the dense ConvNeXt V2 Block decoder, forward_loss with norm_pix_loss) around
  the official sparse encoder (models/convnextv2_sparse.py) re-stated on feature lists (see SparseEncoder), weights
  under timm's names for the encoder (timm's checkpoint_filter_fn applied) and ours for the decoder; loss, pred,
  mask and every gradient (the prediction itself is left out for size; the gradients depend on all of it).

Sources (not in this repository; extract them outside it and pass their locations):
* timm: huggingface/pytorch-image-models, commit aa4b5850c1543fa488abf260f18390eda46cf85d (the ``timm`` folder).
* ConvNeXt-V2: facebookresearch/ConvNeXt-V2, commit 2553895753323c6fe0b2bf390683f5ea358a42b9 (the ``models`` folder).
* torch: Debian bookworm python3-torch 1.13.1, run with /usr/bin/python3.

    git --git-dir=<pytorch-image-models.git> archive aa4b5850c1543fa488abf260f18390eda46cf85d timm | tar -x -C /tmp/src/timm
    git --git-dir=<ConvNeXt-V2.git> archive 2553895753323c6fe0b2bf390683f5ea358a42b9 models | tar -x -C /tmp/src/cnv2
    /usr/bin/python3 test/Mae.MLNet.Tests/Fixtures/ConvNext/make_convnext_fixtures.py --timm-src /tmp/src/timm --cnv2-src /tmp/src/cnv2

Shims: MinkowskiEngine / MinkowskiOps (CUDA-only, not installable here) are replaced by empty stand-in classes so
that the official fcmae.py and utils.py import; the one Minkowski computation the loss depends on, the sparse
encoder, is re-stated in SparseEncoder below on (coordinates, features) lists exactly as convnextv2_sparse.py and
utils.py compute it -- including MinkowskiGRN's norm over ``x.F``, i.e. over the visible pixels of the whole batch.
``--presets`` prints timm's parameter counts of every convnextv2 preset (the numbers the C# test holds).
"""
import argparse, json, os, struct, sys, types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        t = t.detach().cpu().contiguous().float()
        data = t.numpy().astype("<f4", copy=False).tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def perturb(model, gen):
    """Moves every parameter off its init so that a wrongly wired one shows: LayerNorm weight 1 + 0.1 randn, GRN
    weight/bias 0.3 randn (zero at init: GRN would be the identity), biases 0.05 randn, conv/linear weights += 0.02 randn."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen)
            if "grn" in name or name.startswith("mask_token"):
                p.copy_(0.3 * r)
            elif name.endswith("bias"):
                p.copy_(0.05 * r)
            elif p.dim() == 1:
                p.copy_(1 + 0.1 * r)
            else:
                p.add_(0.02 * r)


def images(n, c, size, gen):
    x = torch.randn(n, c, size, size, generator=gen)
    ramp = torch.linspace(-1, 1, size)
    return x + 0.5 * ramp.view(1, 1, 1, -1) + 0.3 * torch.sin(3 * ramp).view(1, 1, -1, 1)


def timm_fixture(timm_convnext, key, conv_mlp, in_chans, classes, grads, out_dir, gen):
    torch.manual_seed(0)
    model = timm_convnext.ConvNeXt(in_chans=in_chans, num_classes=classes, depths=(1, 1, 2, 1), dims=(8, 12, 16, 24),
                                   use_grn=True, ls_init_value=None, conv_mlp=conv_mlp)
    perturb(model, gen)
    model.eval()
    x = images(2, in_chans, 64, gen)
    fmap = model.forward_features(x)
    feats = model.forward_head(fmap, pre_logits=True)
    logits = model.forward_head(fmap)
    probe = torch.randn(logits.shape, generator=gen)
    (logits * probe).sum().backward()
    tensors = [("param." + k, v) for k, v in model.state_dict().items()]
    tensors += [("input.images", x), ("input.probe", probe), ("out.feature_map", fmap), ("out.features", feats),
                ("out.logits", logits)]
    if grads:
        tensors += [("grad." + k, p.grad) for k, p in model.named_parameters()]
    meta = dict(depths="1,1,2,1", dims="8,12,16,24", conv_mlp=str(conv_mlp).lower(), in_chans=in_chans,
                num_classes=classes, image_size=64, has_grads=str(grads).lower(), torch_version=torch.__version__,
                generator="make_convnext_fixtures.py")
    write_safetensors(os.path.join(out_dir, f"convnextv2_{key}.safetensors"), tensors, meta)
    print(key, "logits", logits.flatten()[:4].tolist())
    if key == "a":
        official = to_official(model.state_dict())
        back = timm_convnext.checkpoint_filter_fn({"model": official}, model)   # timm's own mapping must undo it
        assert back.keys() == model.state_dict().keys()
        assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())
        torch.save({"model": official, "epoch": 7}, os.path.join(out_dir, "convnextv2_a_official.pth"))


def to_official(sd):
    """timm names -> the official ConvNeXt-V2 names (models/convnextv2.py), the inverse of timm's checkpoint_filter_fn:
    stem -> downsample_layers.0, stages.i.downsample -> downsample_layers.i, stages.i.blocks.j -> stages.i.j,
    conv_dw -> dwconv, mlp.fcK -> pwconvK (Linear [out, in]), mlp.grn.weight/bias -> grn.gamma/beta [1, 1, 1, C],
    head.norm -> norm, head.fc -> head."""
    import re
    out = {}
    for k, v in sd.items():
        k2 = k.replace("stem.", "downsample_layers.0.")
        k2 = re.sub(r"stages\.(\d+)\.downsample\.(\d+)", r"downsample_layers.\1.\2", k2)
        k2 = re.sub(r"stages\.(\d+)\.blocks\.(\d+)", r"stages.\1.\2", k2)
        k2 = k2.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")
        if "mlp.grn" in k2:
            k2 = k2.replace("mlp.grn.weight", "grn.gamma").replace("mlp.grn.bias", "grn.beta")
            v = v.reshape(1, 1, 1, -1)
        if "pwconv" in k2 and v.dim() == 4:
            v = v.reshape(v.shape[0], v.shape[1])
        k2 = k2.replace("head.norm.", "norm.").replace("head.fc.", "head.")
        out[k2] = v.clone()
    return out


class SparseEncoder(nn.Module):
    """convnextv2_sparse.SparseConvNeXtV2 with dense-shaped weights (official dense names: downsample_layers,
    stages.i.j.dwconv / norm / pwconv1 / grn / pwconv2), computed on a sparse tensor's (coords, features) lists:
    MinkowskiLayerNorm and MinkowskiLinear act on the feature list; the depthwise 7x7 and 2x2 stride-2 Minkowski
    convolutions sum, at each active output site, over the active input sites under the kernel; MinkowskiGRN's
    norm runs over the whole feature list (dim 0: every active site of the batch)."""

    def __init__(self, utils, in_chans, depths, dims):
        super().__init__()
        self.depths = depths
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, 4),
                                                    utils.LayerNorm(dims[0], eps=1e-6, data_format="channels_first")))
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(nn.LayerNorm(dims[i], eps=1e-6), nn.Conv2d(dims[i], dims[i + 1], 2, 2)))
        self.stages = nn.ModuleList()
        for i in range(4):
            blocks = []
            for _ in range(depths[i]):
                b = nn.Module()
                b.dwconv = nn.Conv2d(dims[i], dims[i], 7, padding=3, groups=dims[i])
                b.norm = nn.LayerNorm(dims[i], eps=1e-6)
                b.pwconv1 = nn.Linear(dims[i], 4 * dims[i])
                b.grn = nn.Module()
                b.grn.gamma = nn.Parameter(torch.zeros(1, 4 * dims[i]))
                b.grn.beta = nn.Parameter(torch.zeros(1, 4 * dims[i]))
                b.pwconv2 = nn.Linear(4 * dims[i], dims[i])
                blocks.append(b)
            self.stages.append(nn.Sequential(*blocks))

    @staticmethod
    def upsample_mask(mask, scale):  # verbatim from convnextv2_sparse.py
        p = int(mask.shape[1] ** .5)
        return mask.reshape(-1, p, p).repeat_interleave(scale, axis=1).repeat_interleave(scale, axis=2)

    @staticmethod
    def conv_at_sites(conv, feats, active_in, active_out, stride):
        """A Minkowski convolution: inactive inputs contribute nothing, outputs exist at active sites only."""
        n, h, w = active_in.shape
        dense = feats.new_zeros(n, h, w, feats.shape[1])
        dense[active_in] = feats
        y = F.conv2d(dense.permute(0, 3, 1, 2), conv.weight, conv.bias, stride=stride, padding=conv.padding,
                     groups=conv.groups)
        return y.permute(0, 2, 3, 1)[active_out]

    def forward(self, x, mask):
        mask = self.upsample_mask(mask, 2 ** (len(self.stages) - 1)).unsqueeze(1).type_as(x)
        x = self.downsample_layers[0](x)
        x = x * (1. - mask)                                       # the official `x *= (1.-mask)`
        active = mask[:, 0] == 0                                  # to_sparse: the visible sites
        feats = x.permute(0, 2, 3, 1)[active]                     # [M, C], batch-major like MinkowskiEngine
        for i in range(4):
            if i > 0:
                ln, conv = self.downsample_layers[i]
                feats = ln(feats)
                out_active = active[:, ::2, ::2] & active[:, 1::2, ::2] & active[:, ::2, 1::2] & active[:, 1::2, 1::2]
                feats = self.conv_at_sites(conv, feats, active, out_active, 2)
                active = out_active
            for b in self.stages[i]:
                inp = feats
                y = self.conv_at_sites(b.dwconv, feats, active, active, 1)
                y = b.norm(y)
                y = b.pwconv1(y)
                y = F.gelu(y)
                gx = torch.norm(y, p=2, dim=0, keepdim=True)      # MinkowskiGRN, verbatim on x.F
                nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
                y = b.grn.gamma * (y * nx) + b.grn.beta + y
                y = b.pwconv2(y)
                feats = inp + y
        n, h, w = active.shape
        dense = feats.new_zeros(n, h, w, feats.shape[1])          # x.dense(): zeros at inactive sites
        dense[active] = feats
        return dense.permute(0, 3, 1, 2)


def fcmae_fixture(timm_convnext, fcmae_mod, utils, out_dir, gen):
    depths, dims, dec, size, n, ratio = [1, 1, 2, 1], [8, 12, 16, 24], 8, 96, 2, 0.6
    torch.manual_seed(0)
    model = fcmae_mod.FCMAE(img_size=size, in_chans=3, depths=depths, dims=dims, decoder_depth=1,
                            decoder_embed_dim=dec, patch_size=32, mask_ratio=ratio, norm_pix_loss=True)
    model.encoder = SparseEncoder(utils, 3, depths, dims)
    perturb(model, gen)
    model.eval()
    x = images(n, 3, size, gen)
    L = (size // 32) ** 2
    noise = torch.randn(n, L, generator=gen)
    real_randn = torch.randn
    torch.randn = lambda *a, **k: noise.clone()                  # gen_random_mask draws torch.randn(N, L)
    try:
        loss, pred, mask = model(x, mask_ratio=ratio)
    finally:
        torch.randn = real_randn
    loss.backward()
    # Names: the encoder's through timm's own checkpoint_filter_fn (official dense names -> timm's); the decoder's
    # block by the same rules (dwconv -> conv_dw, pwconvK -> mlp.fcK, grn.gamma/beta -> mlp.grn.weight/bias [C]).
    enc_model = timm_convnext.ConvNeXt(in_chans=3, num_classes=0, depths=depths, dims=dims, use_grn=True, ls_init_value=None)
    def rename_decoder(k):
        return (k.replace("dwconv", "conv_dw").replace("pwconv", "mlp.fc").replace("grn.gamma", "mlp.grn.weight")
                 .replace("grn.beta", "mlp.grn.bias"))
    def timm_names(named):
        enc = {k[len("encoder."):]: v for k, v in named if k.startswith("encoder.")}
        enc_names = {}
        for k, v in enc.items():   # the filter renames one key at a time; map each alone to keep the pairing
            (nk, nv), = timm_convnext.checkpoint_filter_fn({k: v}, enc_model).items()
            enc_names["encoder." + nk] = nv
        dec_names = {rename_decoder(k): (v.reshape(v.shape[-1]) if "grn" in k else v)
                     for k, v in named if not k.startswith("encoder.")}
        return {**enc_names, **dec_names}
    params = timm_names([(k, v) for k, v in model.state_dict().items()])
    grads = timm_names([(k, p.grad) for k, p in model.named_parameters()])
    tensors = [("param." + k, v) for k, v in params.items()]
    tensors += [("input.images", x), ("input.noise", noise), ("out.loss", loss.reshape(())),
                ("out.mask", mask)]
    tensors += [("grad." + k, v) for k, v in grads.items()]
    meta = dict(depths="1,1,2,1", dims="8,12,16,24", conv_mlp="false", in_chans=3, image_size=size,
                decoder_embed_dim=dec, decoder_depth=1, mask_ratio=ratio, norm_pix_loss="true", batch=n,
                torch_version=torch.__version__, generator="make_convnext_fixtures.py")
    write_safetensors(os.path.join(out_dir, "fcmae_f.safetensors"), tensors, meta)
    print("fcmae loss", loss.item(), "mask", mask.tolist())


def finetune_fixture(timm_convnext, out_dir):
    """Two fine-tuning steps of the official recipe (main_finetune.py + optim_factory.py) on the official dense
    ConvNeXtV2 (models/convnextv2.py): layer decay 'single' (LayerDecayValueAssigner, get_num_layer_for_convnext_single),
    get_parameter_groups' no-decay rule (1-D, .bias, .gamma, .beta), torch's AdamW, timm's LabelSmoothingCrossEntropy,
    per-step lr = schedule value x the group's lr_scale. The schedule values are the C# engine's (no warm-up, two
    epochs of one step: cosine gives lr, then lr/2 with min lr 0). Stored under timm's names (checkpoint_filter_fn):
    the weights before, the images and labels, and the weights after both steps."""
    import importlib, types as _types
    # optim_factory imports optimizers from an older timm; only AdamW is used, so those names are stand-ins (and
    # timm.optim's own __init__, which needs a newer torch, is not run).
    for mod in ["timm.optim", "timm.optim.adafactor", "timm.optim.adahessian", "timm.optim.adamp", "timm.optim.lookahead",
                "timm.optim.nadam", "timm.optim.novograd", "timm.optim.nvnovograd", "timm.optim.radam",
                "timm.optim.rmsprop_tf", "timm.optim.sgdp"]:
        m = _types.ModuleType(mod)
        for name in ["Adafactor", "Adahessian", "AdamP", "Lookahead", "Nadam", "NovoGrad", "NvNovoGrad", "RAdam", "RMSpropTF", "SGDP"]:
            setattr(m, name, None)
        sys.modules[mod] = m
    optim_factory = importlib.import_module("optim_factory")
    convnextv2 = importlib.import_module("models.convnextv2")
    from timm.loss import LabelSmoothingCrossEntropy
    depths, dims, classes, size, n = [1, 1, 2, 1], [8, 12, 16, 24], 4, 64, 2
    lr, weight_decay, layer_decay, smoothing = 1e-2, 0.05, 0.7, 0.1
    gen = torch.Generator().manual_seed(2626)
    torch.manual_seed(0)
    model = convnextv2.ConvNeXtV2(in_chans=3, num_classes=classes, depths=depths, dims=dims, drop_path_rate=0.,
                                  head_init_scale=1.)
    perturb(model, gen)
    x = images(n, 3, size, gen)
    y = torch.tensor([1, 3])
    enc_model = timm_convnext.ConvNeXt(in_chans=3, num_classes=classes, depths=depths, dims=dims, use_grn=True,
                                       ls_init_value=None)
    def timm_names(named):
        return timm_convnext.checkpoint_filter_fn({"model": {k: v.detach().clone() for k, v in named.items()}}, enc_model)
    before = timm_names(model.state_dict())
    num_layers = sum(depths)
    assigner = optim_factory.LayerDecayValueAssigner(
        list(layer_decay ** (num_layers + 1 - i) for i in range(num_layers + 2)), depths=depths, layer_decay_type="single")
    args = types.SimpleNamespace(opt="adamw", weight_decay=weight_decay, lr=lr, opt_eps=1e-8, opt_betas=None, momentum=0.9)
    optimizer = optim_factory.create_optimizer(args, model, skip_list=None, get_num_layer=assigner.get_layer_id,
                                               get_layer_scale=assigner.get_scale)
    criterion = LabelSmoothingCrossEntropy(smoothing=smoothing)
    model.train()
    losses = []
    for step_lr in [lr, lr * 0.5]:
        for group in optimizer.param_groups:
            group["lr"] = step_lr * group["lr_scale"]
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = timm_names(model.state_dict())
    tensors = [("param." + k, v) for k, v in before.items()] + [("after." + k, v) for k, v in after.items()]
    tensors += [("input.images", x), ("input.labels", y.float()), ("out.losses", torch.tensor(losses))]
    meta = dict(depths="1,1,2,1", dims="8,12,16,24", conv_mlp="false", in_chans=3, image_size=size, num_classes=classes,
                lr=lr, weight_decay=weight_decay, layer_decay=layer_decay, smoothing=smoothing, steps=2,
                torch_version=torch.__version__, generator="make_convnext_fixtures.py")
    write_safetensors(os.path.join(out_dir, "convnextv2_ft.safetensors"), tensors, meta)
    print("finetune losses", losses, "groups", [(g["lr_scale"], g["weight_decay"], len(g["params"])) for g in optimizer.param_groups])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timm-src", required=True)
    ap.add_argument("--cnv2-src", required=True)
    ap.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--presets", action="store_true")
    ap.add_argument("--finetune-only", action="store_true", help="write convnextv2_ft.safetensors alone")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    sys.path.insert(0, args.timm_src)
    sys.path.insert(0, args.cnv2_src)
    import timm.models.convnext as timm_convnext
    if args.presets:
        import timm
        for name in ["atto", "femto", "pico", "nano", "tiny", "base", "large", "huge"]:
            m = timm.create_model("convnextv2_" + name)
            print(name, sum(p.numel() for p in m.parameters()))
        return
    # Stand-ins so that the official models/fcmae.py and models/utils.py import without MinkowskiEngine.
    me = types.ModuleType("MinkowskiEngine")
    def stand_in(self, *a, **k):   # FCMAE's constructor inits these before the script replaces the encoder
        nn.Module.__init__(self)
        self.kernel, self.bias, self.linear = nn.Parameter(torch.zeros(1, 1)), nn.Parameter(torch.zeros(1)), nn.Linear(1, 1)
    for cls in ["MinkowskiConvolution", "MinkowskiDepthwiseConvolution", "MinkowskiLinear", "MinkowskiGELU", "SparseTensor"]:
        setattr(me, cls, type(cls, (nn.Module,), {"__init__": stand_in}))
    ops = types.ModuleType("MinkowskiOps")
    ops.to_sparse = None
    sys.modules["MinkowskiEngine"], sys.modules["MinkowskiOps"] = me, ops
    import models.utils as utils
    import models.fcmae as fcmae_mod
    if args.finetune_only:
        finetune_fixture(timm_convnext, args.out_dir)
        return
    gen = torch.Generator().manual_seed(26)
    timm_fixture(timm_convnext, "a", True, 3, 5, True, args.out_dir, gen)
    timm_fixture(timm_convnext, "b", False, 1, 3, False, args.out_dir, gen)
    fcmae_fixture(timm_convnext, fcmae_mod, utils, args.out_dir, gen)
    finetune_fixture(timm_convnext, args.out_dir)


if __name__ == "__main__":
    main()
