#!/usr/bin/python3
"""Independent numpy reference of LDM's AutoencoderKL encoder (ldm/modules/diffusionmodules/model.py:
Encoder + quant_conv), for tests/test_sd_img2img.cpp. Plain float64 (duan rounds conv inputs and
weights to f16 as the reference does; the test allows for that).

usage: sd_vae_encoder_ref.py CHECKPOINT.safetensors IMAGE.npy OUT.npy
  IMAGE.npy: [1][3][H][W] float32 in [-1, 1];  OUT.npy: moments [1][8][H/8][W/8] float32
"""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    dt = {"F32": np.float32, "F16": np.float16}

    def get(name):
        t = header[name]
        b, e = t["data_offsets"]
        return np.frombuffer(data[b:e].tobytes(), dtype=dt[t["dtype"]]).reshape(t["shape"]).astype(np.float64)

    return get


def conv(x, w, b, stride=1, pad=1):  # x [C][H][W], w [O][C][k][k]
    k = w.shape[2]
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    C, H, W = x.shape
    oh, ow = (H - k) // stride + 1, (W - k) // stride + 1
    cols = np.empty((C, k, k, oh, ow))
    for dy in range(k):
        for dx in range(k):
            cols[:, dy, dx] = x[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
    y = np.tensordot(w, cols, axes=([1, 2, 3], [0, 1, 2]))
    return y + b[:, None, None]


def group_norm(x, g, b, groups=32, eps=1e-6):
    C, H, W = x.shape
    xg = x.reshape(groups, -1)
    m = xg.mean(axis=1, keepdims=True)
    v = xg.var(axis=1, keepdims=True)
    xg = (xg - m) / np.sqrt(v + eps)
    return xg.reshape(C, H, W) * g[:, None, None] + b[:, None, None]


def swish(x):
    return x / (1 + np.exp(-x))


def main():
    get = load(sys.argv[1])
    x = np.load(sys.argv[2]).astype(np.float64)[0]
    P = "first_stage_model.encoder."

    def c(name, x, stride=1, pad=1):
        return conv(x, get(name + ".weight"), get(name + ".bias"), stride, pad)

    def gn(name, x):
        return group_norm(x, get(name + ".weight"), get(name + ".bias"))

    def resnet(p, x):
        h = c(p + ".conv1", swish(gn(p + ".norm1", x)))
        h = c(p + ".conv2", swish(gn(p + ".norm2", h)))
        if p + ".nin_shortcut.weight" in names:
            x = c(p + ".nin_shortcut", x, pad=0)
        return x + h

    def attn(p, x):
        C, H, W = x.shape
        h = gn(p + ".norm", x)
        q = c(p + ".q", h, pad=0).reshape(C, -1).T  # [HW][C]
        k = c(p + ".k", h, pad=0).reshape(C, -1)  # [C][HW]
        v = c(p + ".v", h, pad=0).reshape(C, -1)
        w = q @ k * C ** -0.5
        w = np.exp(w - w.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        h = (v @ w.T).reshape(C, H, W)
        return x + c(p + ".proj_out", h, pad=0)

    with open(sys.argv[1], "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        names = set(json.loads(f.read(n)).keys())
    h = c(P + "conv_in", x)
    for i in range(4):
        for j in range(2):
            h = resnet(f"{P}down.{i}.block.{j}", h)
        if i != 3:  # Downsample: pad (0, 1, 0, 1), then a stride-2 conv without padding
            h = np.pad(h, ((0, 0), (0, 1), (0, 1)))
            h = c(f"{P}down.{i}.downsample.conv", h, stride=2, pad=0)
    h = resnet(P + "mid.block_1", h)
    h = attn(P + "mid.attn_1", h)
    h = resnet(P + "mid.block_2", h)
    h = c(P + "conv_out", swish(gn(P + "norm_out", h)))
    h = c("first_stage_model.quant_conv", h, pad=0)
    np.save(sys.argv[3], h[None].astype(np.float32))


main()
