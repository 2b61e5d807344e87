#!/usr/bin/python3
"""Fixtures for the image-file input tests (test/Mae.MLNet.Tests/Input/), made with Debian's python3-torchvision
(0.14) and Pillow: source images and torchvision's own outputs for the PIL path of
    F.resized_crop(img, top, left, h, w, [s, s], InterpolationMode.BICUBIC)  (+ F.hflip)  — RandomResizedCrop's apply
    Resize(int(s / (224/256)), BICUBIC) + CenterCrop(s)                                   — the reference's eval transform
    ToTensor + Normalize(ImageNet mean, std)                                              — as float32 bytes
and a few files in formats SkiaSharp cannot be asked to write (CMYK JPEG, 16-bit PNG, EXIF orientation 6).
Run: /usr/bin/python3 make_input_fixtures.py   (in this folder; writes cases.json and the .png/.jpg/.bin files)."""
import json
import numpy as np
import torch
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as F

rng = np.random.default_rng(1234)


def photo_like(h, w, channels=3):
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        smooth = 127 + 90 * np.sin(0.07 * (c + 1) * x + 0.11 * y) * np.cos(0.05 * y - 0.03 * c * x)
        edges = 60 * ((x // 9 + y // 13 + c) % 2)
        planes.append(smooth + edges + rng.normal(0, 12, (h, w)))
    a = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    return a if channels > 1 else a[..., 0]


Image.fromarray(photo_like(71, 97)).save("rgb_97x71.png")
Image.fromarray(photo_like(64, 50, 1), "L").save("grey_50x64.png")

cases = []
def crop_case(src, top, left, h, w, size, flip):
    img = Image.open(src).convert("RGB" if not src.startswith("grey") else "L")
    out = F.resized_crop(img, top, left, h, w, [size, size], T.InterpolationMode.BICUBIC)
    if flip:
        out = F.hflip(out)
    name = f"crop_{len(cases)}.png"
    out.save(name)
    cases.append(dict(kind="crop", source=src, top=top, left=left, height=h, width=w, size=size, flip=flip, expected=name))

crop_case("rgb_97x71.png", 5, 7, 60, 83, 32, False)   # downscale, antialiased
crop_case("rgb_97x71.png", 0, 0, 71, 97, 16, True)    # whole image, strong downscale, flipped
crop_case("rgb_97x71.png", 20, 30, 25, 19, 40, False)  # upscale
crop_case("rgb_97x71.png", 3, 11, 50, 50, 50, True)    # same size: identity + flip
crop_case("rgb_97x71.png", 10, 2, 37, 61, 24, False)
crop_case("grey_50x64.png", 4, 3, 55, 41, 20, False)

def eval_case(src, size):
    img = Image.open(src).convert("RGB")
    r = int(size / (224 / 256))
    out = T.Compose([T.Resize(r, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)])(img)
    name = f"eval_{len(cases)}.png"
    out.save(name)
    cases.append(dict(kind="eval", source=src, size=size, expected=name))

eval_case("rgb_97x71.png", 32)
eval_case("rgb_97x71.png", 48)

# Full float output of one training crop: ToTensor + Normalize, float32 little-endian CHW.
img = Image.open("rgb_97x71.png").convert("RGB")
t = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(
    F.hflip(F.resized_crop(img, 5, 7, 60, 83, [32, 32], T.InterpolationMode.BICUBIC)))
t.numpy().astype("<f4").tofile("tensor_0.bin")
cases.append(dict(kind="tensor", source="rgb_97x71.png", top=5, left=7, height=60, width=83, size=32, flip=True, expected="tensor_0.bin"))

# Formats: what PIL's convert("RGB") (+ exif_transpose for the rotated photo) gives, to compare against loosely.
base = Image.fromarray(photo_like(40, 60))
base.convert("CMYK").save("cmyk.jpg", quality=95)
Image.open("cmyk.jpg").convert("RGB").save("cmyk_pil_rgb.png")
g16 = (photo_like(30, 20, 1).astype(np.uint16) * 257)
Image.fromarray(g16.astype(np.uint16), "I;16").save("grey16.png")
Image.fromarray((g16 // 257).astype(np.uint8), "L").save("grey16_as_8bit.png")
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
base.save("exif6.jpg", quality=95, exif=exif.tobytes())
from PIL import ImageOps
ImageOps.exif_transpose(Image.open("exif6.jpg")).convert("RGB").save("exif6_pil_upright.png")
Image.open("exif6.jpg").convert("RGB").save("exif6_pil_raw.png")
cases.append(dict(kind="files", cmyk="cmyk.jpg", cmyk_rgb="cmyk_pil_rgb.png", grey16="grey16.png", grey16_8bit="grey16_as_8bit.png",
                  exif6="exif6.jpg", exif6_upright="exif6_pil_upright.png", exif6_raw="exif6_pil_raw.png"))

with open("cases.json", "w") as f:
    json.dump(dict(torchvision=__import__("torchvision").__version__, pillow=Image.__version__, cases=cases), f, indent=1)
print(len(cases), "cases")
