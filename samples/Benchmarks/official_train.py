"""Times the official MAE training step (facebookresearch/mae models_mae.py with timm's Block) for
`--bench train --against-official`: the benchmark starts this script, which builds the model, warms up and prints
"ready"; then each line "run N" on stdin runs N timed steps and prints "ips X" (images per second). The official
code is not part of this repository: --official names a folder holding models_mae.py and util/pos_embed.py (see
docs/benchmarks.md for where they come from and the two small fixes torch 1.13 / numpy >= 1.24 need).

One step as engine_pretrain.py's train_one_epoch: forward (random 75 % mask) + loss.item() + backward + AdamW
(betas 0.9 / 0.95, weight decay 0.05 on weights, none on biases / norms / tokens) + zero_grad; bf16 under
torch.autocast as the reference's amp path.
"""
import argparse
import sys
import time
from functools import partial

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--chans", type=int, default=3)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--dec-dim", type=int, default=128)
    ap.add_argument("--dec-depth", type=int, default=2)
    ap.add_argument("--dec-heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    sys.path.insert(0, a.official)
    import models_mae  # noqa: E402  (the official file, from --official)

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    model = models_mae.MaskedAutoencoderViT(
        img_size=a.img, patch_size=a.patch, in_chans=a.chans, embed_dim=a.dim, depth=a.depth, num_heads=a.heads,
        decoder_embed_dim=a.dec_dim, decoder_depth=a.dec_depth, decoder_num_heads=a.dec_heads, mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), norm_pix_loss=True).to(device)
    model.train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or name in ("pos_embed", "cls_token", "mask_token") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(a.seed)
    batches = [torch.randn(a.batch, a.chans, a.img, a.img, generator=g).to(device) for _ in range(4)]
    use_bf16 = a.dtype == "bf16"
    counter = [0]

    def step():
        x = batches[counter[0] % len(batches)]
        counter[0] += 1
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss, _, _ = model(x, mask_ratio=0.75)
        loss_value = loss.item()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss_value

    for _ in range(a.warmup):
        step()
    print(f"ready torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        n = int(parts[1])
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"ips {n * a.batch / (time.perf_counter() - t):.3f}", flush=True)


if __name__ == "__main__":
    main()
