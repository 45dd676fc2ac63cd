#!/usr/bin/env python3
"""The training-step benchmark's PyTorch reference (run by site-agent/engine/bench/pytorch-baseline.ts).

Builds the SAME network as the TypeScript benchmark and times full training steps (forward, loss, backward,
optimizer update, loss read back) on the CPU with a fixed thread count, then prints one JSON line: mean and best
wall time per step, and process CPU time per step (all threads).

  reference: conv3x3(no bias)-BN-ReLU x2 per level, 2x2 max-pool, nearest 2x upsampling, concat [up, skip],
             1x1 head with bias (site-agent/engine/bench/reference-unet.ts)
  unet:      the product U-Net: same blocks, 2x2 stride-2 transposed conv with bias, concat [skip, up]
             (site-agent/model/unet.ts)
Losses: mean softmax cross-entropy ('ce'), + soft Dice over foreground classes with smoothing 1e-5 ('ce+dice',
site-agent/train/losses.ts). Optimizers: 'sgd' (plain), 'momentum' (0.9, PyTorch's heavy ball = tfjs momentum),
'adam' (0.9, 0.999, eps 1e-8). BN eps 1e-5 in training mode.
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(cout, eps=1e-5)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(cout, eps=1e-5)

    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class UNet(nn.Module):
    def __init__(self, cin: int, classes: int, base: int, depth: int, upsample: str):
        super().__init__()
        self.depth, self.upsample = depth, upsample
        ch = [base * 2 ** level for level in range(depth + 1)]
        self.enc = nn.ModuleList()
        c = cin
        for level in range(depth):
            self.enc.append(Block(c, ch[level]))
            c = ch[level]
        self.bottleneck = Block(c, ch[depth])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        c = ch[depth]
        for level in reversed(range(depth)):
            if upsample == 'transpose':
                self.up.append(nn.ConvTranspose2d(c, ch[level], 2, stride=2))
                self.dec.append(Block(2 * ch[level], ch[level]))
            else:
                self.dec.append(Block(c + ch[level], ch[level]))
            c = ch[level]
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for i, block in enumerate(self.dec):
            skip = skips[self.depth - 1 - i]
            if self.upsample == 'transpose':
                x = block(torch.cat([skip, self.up[i](x)], 1))
            else:
                x = block(torch.cat([F.interpolate(x, scale_factor=2, mode='nearest'), skip], 1))
        return self.head(x)


def dice_loss(logits, labels, classes: int, smooth: float = 1e-5):
    p = torch.softmax(logits, 1)
    y = F.one_hot(labels, classes).permute(0, 3, 1, 2).to(p.dtype)
    inter = (p * y).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + y.sum((0, 2, 3))
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1 - dice[1:].mean()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', choices=['reference', 'unet'], default='reference')
    ap.add_argument('--in-channels', type=int, default=1)
    ap.add_argument('--classes', type=int, default=4)
    ap.add_argument('--base', type=int, default=16)
    ap.add_argument('--depth', type=int, default=2)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--loss', choices=['ce', 'ce+dice'], default='ce')
    ap.add_argument('--optimizer', choices=['sgd', 'momentum', 'adam'], default='sgd')
    ap.add_argument('--lr', type=float, default=0.01)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    net = UNet(a.in_channels, a.classes, a.base, a.depth, 'nearest' if a.model == 'reference' else 'transpose')
    net.train()
    if a.optimizer == 'adam':
        opt = torch.optim.Adam(net.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9 if a.optimizer == 'momentum' else 0.0)
    x = torch.randn(a.batch, a.in_channels, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch, a.size, a.size))

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        if a.loss == 'ce+dice':
            loss = loss + dice_loss(logits, y, a.classes)
        loss.backward()
        opt.step()
        return loss.item()

    first = None
    for _ in range(a.warmup):
        v = step()
        first = v if first is None else first
    times = []
    # Process CPU time of all threads (OpenMP's included, spin-waiting too): the work, whatever the load.
    c0 = time.process_time()
    for _ in range(a.steps):
        t0 = time.perf_counter()
        v = step()
        times.append((time.perf_counter() - t0) * 1000)
        first = v if first is None else first
    cpu_ms = (time.process_time() - c0) * 1000 / a.steps
    print(json.dumps({
        'msPerStep': sum(times) / len(times),
        'bestMsPerStep': min(times),
        'cpuMsPerStep': cpu_ms,
        'stepsMs': times,
        'firstLoss': first,
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
    }))
    return 0


if __name__ == '__main__':
    sys.exit(main())
