#!/usr/bin/env python3
"""PyTorch peer of scalelab-train-bench: trains the same model with the same settings and prints
its training throughput as one JSON line.

Written as a competent eager PyTorch user would write it (the nanoGPT / Llama reference style):
nn.Linear layers, attention as matmul + masked_fill + softmax (this PyTorch, 1.13, has no fused
scaled_dot_product_attention), F.cross_entropy, torch.optim.AdamW and clip_grad_norm_.

  --arch llama  the Llama layout: tied embedding, n_layers x [x += Attn(RMSNorm(x));
                x += SwiGLU(RMSNorm(x))], final RMSNorm, RoPE rotate-half (theta 10000),
                GQA (n_kv_heads), no biases, d_ff = 8/3 d_model rounded up to a multiple of 8.
  --arch gpt2   the GPT-2 layout scalelab's "transformer" had before (learned positions,
                LayerNorm, GELU MLP of 4 d_model, biases, tied head).

Random tokens (uniform over the vocabulary), so no data files. Warm-up steps are excluded from
the timing. Output: {"tokens_per_s", "tokens_per_cpu_s" (per
second of process CPU time: steadier than wall time on a shared machine), "params", "final_loss", "steps", "threads", "torch"}.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def swiglu_width(d_model):
    width = -(-8 * d_model // 3)  # ceil(8/3 d_model)
    return -(-width // 8) * 8


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def causal_attention(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class LlamaBlock(nn.Module):
    def __init__(self, d, heads, kv_heads, d_ff):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d // heads
        self.attn_norm = RMSNorm(d)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.mlp_norm = RMSNorm(d)
        self.w_gate = nn.Linear(d, d_ff, bias=False)
        self.w_up = nn.Linear(d, d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.wk(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        y = causal_attention(q, k, v, mask).transpose(1, 2).reshape(b, t, d)
        x = x + self.wo(y)
        h = self.mlp_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embedding = nn.Embedding(a.vocab, a.d_model)
        kv_heads = a.n_kv_heads or a.n_heads
        self.blocks = nn.ModuleList(
            LlamaBlock(a.d_model, a.n_heads, kv_heads, swiglu_width(a.d_model))
            for _ in range(a.n_layers))
        self.norm = RMSNorm(a.d_model)
        head_dim = a.d_model // a.n_heads
        inv_freq = 10000.0 ** (-torch.arange(0, head_dim // 2, dtype=torch.float64) * 2 / head_dim)
        angles = torch.outer(torch.arange(a.seq_len, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)
        self.register_buffer("mask", torch.ones(a.seq_len, a.seq_len, dtype=torch.bool).triu(1),
                             persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.embedding(tokens)
        cos, sin, mask = self.cos[:t], self.sin[:t], self.mask[:t, :t]
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return F.linear(self.norm(x), self.embedding.weight)


class Gpt2Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_attn = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln_mlp = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc_proj = nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        qkv = self.qkv(self.ln_attn(x)).view(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        y = causal_attention(q, k, v, mask).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.fc_proj(F.gelu(self.fc(self.ln_mlp(x))))


class Gpt2(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embedding = nn.Embedding(a.vocab, a.d_model)
        self.position = nn.Embedding(a.seq_len, a.d_model)
        self.blocks = nn.ModuleList(Gpt2Block(a.d_model, a.n_heads) for _ in range(a.n_layers))
        self.ln_final = nn.LayerNorm(a.d_model)
        self.register_buffer("mask", torch.ones(a.seq_len, a.seq_len, dtype=torch.bool).triu(1),
                             persistent=False)
        # As scalelab's: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 n_layers).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * a.n_layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.embedding(tokens) + self.position(torch.arange(t))
        for block in self.blocks:
            x = block(x, self.mask[:t, :t])
        return F.linear(self.ln_final(x), self.embedding.weight)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["llama", "gpt2"], default="llama")
    parser.add_argument("--d_model", type=int, required=True)
    parser.add_argument("--n_layers", type=int, required=True)
    parser.add_argument("--n_heads", type=int, required=True)
    parser.add_argument("--n_kv_heads", type=int, default=0)
    parser.add_argument("--seq_len", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Llama(a) if a.arch == "llama" else Gpt2(a)
    tied = model.embedding.weight
    decay = [p for p in model.parameters() if p.dim() == 2 and p is not tied and
             (a.arch == "llama" or p is not model.position.weight)]
    decay_ids = {id(p) for p in decay}
    no_decay = [p for p in model.parameters() if id(p) not in decay_ids]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.95))
    batches = [torch.randint(a.vocab, (a.batch, a.seq_len + 1)) for _ in range(4)]

    loss = None
    start = None
    start_cpu = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            start = time.perf_counter()
            start_cpu = time.process_time()
        batch = batches[step % len(batches)]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    elapsed = time.perf_counter() - start
    elapsed_cpu = time.process_time() - start_cpu
    print(json.dumps({
        "tokens_per_s": a.steps * a.batch * a.seq_len / elapsed,
        "tokens_per_cpu_s": a.steps * a.batch * a.seq_len / elapsed_cpu,
        "params": sum(p.numel() for p in model.parameters()),
        "final_loss": loss.item(),
        "steps": a.steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
