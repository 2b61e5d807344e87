#!/usr/bin/python3
"""Fixtures for the RandAugment op tests (test/Mae.MLNet.Tests/Input/Augmentation/RandAugmentPilParityTest.cs), made with
Debian's Pillow (9.4): each op called exactly as timm's auto_augment.py calls Pillow for the fine-tuning recipe of
facebookresearch/mae (`rand-m9-mstd0.5-inc1`, bicubic, fill = round(255 × ImageNet mean) = (124, 116, 104)):
    ImageOps.autocontrast / equalize / invert / posterize / solarize, the solarize_add lookup table,
    ImageEnhance.Color / Contrast / Brightness / Sharpness (factor),
    Image.rotate(deg, BICUBIC, fillcolor), Image.transform(size, AFFINE, shear / translate matrix, BICUBIC, fillcolor).
Writes randaugment.bin (every input and output image, uint8, H×W×C row-major, one after another) and cases.json
(which op, its argument, the input, the byte offsets). Run in this folder: /usr/bin/python3 make_randaugment_fixtures.py"""
import json
import numpy as np
from PIL import Image, ImageOps, ImageEnhance

rng = np.random.default_rng(2022)
FILL = (124, 116, 104)


def photo_like(h, w, channels, lo=0, hi=255):
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        smooth = 0.5 + 0.35 * np.sin(0.3 * (c + 1) * x + 0.2 * y) * np.cos(0.17 * y - 0.05 * c * x)
        edges = 0.25 * ((x // 5 + y // 7 + c) % 2)
        planes.append(smooth + edges + rng.normal(0, 0.05, (h, w)))
    a = np.stack(planes, -1)
    a = lo + (hi - lo) * (a - a.min()) / (a.max() - a.min())
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


images = [
    photo_like(20, 24, 3),                                   # full range, non-square (H 20, W 24)
    photo_like(17, 15, 3, 60, 141),                          # narrow range: autocontrast / equalize have work to do
    rng.integers(0, 256, (12, 13, 3), dtype=np.uint8),       # noise
    photo_like(19, 16, 1, 30, 200)[..., 0:1],                # grey (mode L)
]


def pil(a):
    return Image.fromarray(a[..., 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB")


def fill(img):
    return FILL[0] if img.mode == "L" else FILL


def solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def affine(img, matrix):
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BICUBIC, fillcolor=fill(img))


OPS = {
    "AutoContrast": lambda img, a: ImageOps.autocontrast(img),
    "Equalize": lambda img, a: ImageOps.equalize(img),
    "Invert": lambda img, a: ImageOps.invert(img),
    "Posterize": lambda img, a: img if a >= 8 else ImageOps.posterize(img, int(a)),
    "Solarize": lambda img, a: ImageOps.solarize(img, a),
    "SolarizeAdd": lambda img, a: solarize_add(img, int(a)),
    "Color": lambda img, a: ImageEnhance.Color(img).enhance(a),
    "Contrast": lambda img, a: ImageEnhance.Contrast(img).enhance(a),
    "Brightness": lambda img, a: ImageEnhance.Brightness(img).enhance(a),
    "Sharpness": lambda img, a: ImageEnhance.Sharpness(img).enhance(a),
    "Rotate": lambda img, a: img.rotate(a, resample=Image.BICUBIC, fillcolor=fill(img)),
    "ShearX": lambda img, a: affine(img, (1, a, 0, 0, 1, 0)),
    "ShearY": lambda img, a: affine(img, (1, 0, 0, a, 1, 0)),
    "TranslateXRel": lambda img, a: affine(img, (1, 0, a * img.size[0], 0, 1, 0)),
    "TranslateYRel": lambda img, a: affine(img, (1, 0, 0, 0, 1, a * img.size[1])),
}
ARGS = {
    "AutoContrast": [0], "Equalize": [0], "Invert": [0],
    "Posterize": [0, 1, 2, 4], "Solarize": [0, 26, 128, 256], "SolarizeAdd": [0, 50, 99],
    "Color": [0.1, 0.55, 1.0, 1.45, 1.9], "Contrast": [0.1, 0.55, 1.45, 1.9],
    "Brightness": [0.1, 0.55, 1.45, 1.9], "Sharpness": [0.1, 0.55, 1.45, 1.9],
    "Rotate": [27.0, -13.5, 0.0, 30.0, -4.2], "ShearX": [0.27, -0.135, 0.3], "ShearY": [0.27, -0.135],
    "TranslateXRel": [0.405, -0.2, 0.1234], "TranslateYRel": [0.405, -0.31],
}

blob = bytearray()
inputs = []
for a in images:
    inputs.append(dict(offset=len(blob), height=a.shape[0], width=a.shape[1], channels=a.shape[2]))
    blob += a.tobytes()
cases = []
for name, args in OPS.items():
    for arg in ARGS[name]:
        for i, a in enumerate(images):
            out = np.asarray(OPS[name](pil(a), arg)).reshape(a.shape)
            cases.append(dict(op=name, arg=arg, input=i, offset=len(blob)))
            blob += out.tobytes()
with open("randaugment.bin", "wb") as f:
    f.write(bytes(blob))
with open("cases.json", "w") as f:
    json.dump(dict(generator="make_randaugment_fixtures.py", pillow=Image.__version__, fill=FILL, inputs=inputs, cases=cases), f, indent=0)
print(len(cases), "cases,", len(blob), "bytes")
