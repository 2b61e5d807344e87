#!/usr/bin/python3
"""The official MAE pre-training input pipeline (main_pretrain.py), timed on a folder:
ImageFolder + RandomResizedCrop(size, scale=(0.2, 1.0), interpolation=BICUBIC) + RandomHorizontalFlip + ToTensor +
Normalize(ImageNet), DataLoader(batch, shuffle, num_workers, drop_last=True).
Prints one line per epoch: `epoch E images N seconds S cpu C` (C: CPU seconds of this process and its finished
workers — the DataLoader joins its workers at the end of each epoch). Usage:
torchvision_loader.py FOLDER SIZE WORKERS BATCH EPOCHS"""
import os
import sys
import time
import torch
import torchvision.datasets as datasets
import torchvision.transforms as transforms

folder, size, workers, batch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
transform = transforms.Compose([
    transforms.RandomResizedCrop(size, scale=(0.2, 1.0), interpolation=transforms.InterpolationMode.BICUBIC),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
dataset = datasets.ImageFolder(folder, transform=transform)
loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
for e in range(epochs):
    c0 = os.times()
    t0 = time.perf_counter()
    n = 0
    for images, _ in loader:
        n += images.shape[0]
    seconds = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user + c1.system + c1.children_user + c1.children_system) - (c0.user + c0.system + c0.children_user + c0.children_system)
    print(f"epoch {e} images {n} seconds {seconds:.4f} cpu {cpu:.4f}", flush=True)
