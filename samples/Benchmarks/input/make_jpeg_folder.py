#!/usr/bin/python3
"""Writes a folder of photo-like JPEGs for `--bench input`: ImageFolder layout (10 class sub-folders), sizes around
ImageNet's average (~500×375, varied aspect), smooth shading + shapes + sensor-like noise, quality 90.
Usage: make_jpeg_folder.py FOLDER [COUNT=2000] [SEED=0]"""
import os
import sys
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

folder = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
for c in range(10):
    os.makedirs(os.path.join(folder, f"class{c}"), exist_ok=True)
for i in range(count):
    w = int(np.clip(rng.normal(500, 60), 300, 700))
    h = int(np.clip(w * rng.choice([0.75, 0.75, 0.667, 1.0, 1.333]), 200, 800))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    grad = rng.uniform(-0.2, 0.2, (3, 2))
    img = np.stack([base[k] + grad[k, 0] * x + grad[k, 1] * y for k in range(3)], -1)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(pil)
    for _ in range(rng.integers(4, 12)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        r = rng.integers(10, max(11, w // 3))
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0 - r, y0 - r, x0 + r, y0 + r], fill=col)
    pil = pil.filter(ImageFilter.GaussianBlur(1.5))
    a = np.asarray(pil).astype(np.float32) + rng.normal(0, 6, (h, w, 3))
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(
        os.path.join(folder, f"class{i % 10}", f"img{i:05d}.jpg"), quality=90)
print(f"{count} JPEGs in {folder}")
