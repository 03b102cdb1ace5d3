"""gen_engine_e2e.py: the end-to-end training fixture (imported by
gen_engine_fixtures.py).

A small conv + attention network (conv3x3, GroupNorm+SiLU, LayerNorm,
two-head self-attention with q/k/v/out projections, residual, linear head,
MSE) is trained for STEPS steps with plain SGD, and again with AdamW and gradient
clipping, in float32 from fixed initial
weights on fixed batches. Stored: the initial weights (PyTorch state-dict
names), the 16-sample data set and targets, and the loss of every step.
The C test (tests/test_engine_e2e.c) builds the same network on the engine,
trains it on the same batches and compares the curves.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

STEPS = 200
BATCH = 4
SAMPLES = 16
LR = 0.1
ADAMW_LR = 0.01
CLIP = 1.0


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8, eps=1e-5)
        self.ln = nn.LayerNorm(8, eps=1e-5)
        self.to_q = nn.Linear(8, 8, bias=False)
        self.to_k = nn.Linear(8, 8, bias=False)
        self.to_v = nn.Linear(8, 8, bias=False)
        self.to_out = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        B, _, H, W = x.shape
        h = F.silu(self.gn(self.conv(x)))                      # (B, 8, H, W)
        t = h.flatten(2).transpose(1, 2)                         # (B, HW, 8)
        n = self.ln(t)
        q, k, v = (p(n).view(B, H * W, 2, 4).transpose(1, 2) for p in (self.to_q, self.to_k, self.to_v))
        a = F.scaled_dot_product_attention(q, k, v)              # (B, 2, HW, 4)
        a = a.transpose(1, 2).reshape(B, H * W, 8)
        t = t + self.to_out(a)
        o = self.head(t)                                         # (B, HW, 3)
        return o.transpose(1, 2).reshape(B, 3, H, W)


def train(net, x, y, opt, clip):
    losses = []
    for step in range(STEPS):
        idx = [(step * BATCH + j) % SAMPLES for j in range(BATCH)]
        opt.zero_grad()
        loss = F.mse_loss(net(x[idx]), y[idx])
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    return losses


def main(out_dir, save):
    torch.manual_seed(5)
    net = Net()
    with torch.no_grad():  # non-trivial affine parameters of the norms
        net.gn.weight.uniform_(0.5, 1.5)
        net.gn.bias.uniform_(-0.3, 0.3)
        net.ln.weight.uniform_(0.5, 1.5)
        net.ln.bias.uniform_(-0.3, 0.3)
    init = {k: v.detach().clone().numpy() for k, v in net.state_dict().items()}
    x = torch.randn(SAMPLES, 3, 8, 8)
    teacher = nn.Conv2d(3, 3, 3, padding=1)
    with torch.no_grad():
        y = torch.tanh(teacher(x)) + 0.1 * x
    losses = train(net, x, y, torch.optim.SGD(net.parameters(), lr=LR), clip=None)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    opt = torch.optim.AdamW(net.parameters(), lr=ADAMW_LR, weight_decay=0.01)
    losses_adamw = train(net, x, y, opt, clip=CLIP)
    tensors = {f"init.{k}": v for k, v in init.items()}
    tensors["data.x"] = x.numpy()
    tensors["data.y"] = y.numpy()
    tensors["loss"] = torch.tensor(losses, dtype=torch.float32).numpy()
    tensors["loss_adamw"] = torch.tensor(losses_adamw, dtype=torch.float32).numpy()
    meta = {"generator": "tools/gen_engine_e2e.py", "torch": torch.__version__,
            "optimizer": f"SGD lr={LR}; loss_adamw: AdamW lr={ADAMW_LR} wd=0.01, clip_grad_norm {CLIP}", "steps": str(STEPS), "batch": str(BATCH),
            "batches": "step s uses samples (s*batch + j) % samples"}
    save(os.path.join(out_dir, "e2e.safetensors"), tensors, meta)
    print(f"e2e.safetensors: SGD loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
          f"AdamW {losses_adamw[0]:.4f} -> {losses_adamw[-1]:.4f}")
