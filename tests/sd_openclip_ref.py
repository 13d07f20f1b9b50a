#!/usr/bin/python3
"""Independent numpy reference of OpenCLIP's text transformer (open_clip/transformer.py
TextTransformer, as LDM's FrozenOpenCLIPEmbedder and sgm's FrozenOpenCLIPEmbedder2 use it), for
tests/test_sd_variants.cpp. Plain float64, exact (erf) GELU.

usage: sd_openclip_ref.py DIR LAYERS
  DIR holds one .npy per tensor (OpenCLIP names, no prefix) and tokens.npy [77] (int as float);
  writes DIR/hidden.npy = ln_final(output of layer -2) [77][D] and DIR/pooled.npy =
  ln_final(last layer)[argmax(tokens)] @ text_projection [P].
"""
import math
import sys

import numpy as np

d, n_layers = sys.argv[1], int(sys.argv[2])


def get(name):
    return np.load(f"{d}/{name}.npy").astype(np.float64)


def ln(x, p):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * get(p + ".weight") + get(p + ".bias")


def lin(x, p):
    return x @ get(p + ".weight").T + get(p + ".bias")


gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
tok = np.load(f"{d}/tokens.npy").astype(np.int64).reshape(-1)
vocab = get("token_embedding.weight").shape[0]
x = get("token_embedding.weight")[tok % vocab] + get("positional_embedding")
T, D = x.shape
H = D // 64
mask = np.triu(np.full((T, T), -np.inf), 1)
hidden = None
for i in range(n_layers):
    if i == n_layers - 1:
        hidden = ln(x, "ln_final")
    L = f"transformer.resblocks.{i}."
    h = ln(x, L + "ln_1")
    qkv = h @ get(L + "attn.in_proj_weight").T + get(L + "attn.in_proj_bias")
    q, k, v = qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:]
    out = np.zeros_like(h)
    for j in range(H):
        s = slice(64 * j, 64 * j + 64)
        a = q[:, s] @ k[:, s].T / 8.0 + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        out[:, s] = (a / a.sum(-1, keepdims=True)) @ v[:, s]
    x = x + lin(out, L + "attn.out_proj")
    x = x + lin(gelu(lin(ln(x, L + "ln_2"), L + "mlp.c_fc")), L + "mlp.c_proj")
pooled = ln(x, "ln_final")[int(np.argmax(tok))] @ get("text_projection")
np.save(f"{d}/hidden.npy", hidden.astype(np.float32))
np.save(f"{d}/pooled.npy", pooled.astype(np.float32))
