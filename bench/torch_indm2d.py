#!/usr/bin/env python3
"""PyTorch CPU twin of the Rust/burn INDM 2D checkerboard training step.

Used only for speed comparison with the burn implementation. The model,
loss and optimiser step mirror the Rust code:

  * data: 2D checkerboard, batch B (torch RNG, seeded; not bit-identical to Rust)
  * SDE: VP, beta_min 0.1, beta_max 20, eps 1e-3
  * time sampling: importance sampling with density ~ beta(t)/sigma(t)^2
  * flow: 8 affine coupling layers, conditioner MLP 1-64-64-2 (SiLU),
    last Linear zero-initialised  -> 35,344 parameters
  * score net: features [z, c, sin(w_k c), cos(w_k c) for k = 0..7 (interleaved)], w_k = 2^k / 8, c = ln sigma(t)
    (width 19), MLP 19-128-128-128-2 (SiLU), outputs eps_hat -> 35,842 parameters
  * one joint step: backward, per-model grad-norm clipping (1.0), two AdamW
    optimisers (flow lr 1e-3, score lr 1e-3), EMA of all parameters.

Usage:
    OMP_NUM_THREADS=2 python3 bench/torch_indm2d.py --steps 300 --warmup 30 \
        --threads 2 --batch 512 --seed 0

The script calls torch.set_num_threads(--threads); the caller should ALSO set
OMP_NUM_THREADS (and MKL_NUM_THREADS) to the same number, because some
OpenMP/MKL pools are sized at import time, before this script can act.

Prints one JSON line:
  {"framework":"pytorch","torch":...,"threads":N,"batch":B,"params":P,
   "steps":S,"seconds":s,"steps_per_second":x,"final_loss":L}
"""

import argparse
import json
import math
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the environment
    sys.stderr.write(
        "error: PyTorch is not installed for this interpreter "
        f"({sys.executable}).\n"
        "Install it (e.g. `pip install torch numpy`) or run with a Python that "
        "has torch, e.g. /work/torchenv/bin/python bench/torch_indm2d.py\n"
    )
    sys.exit(2)


# ---------------------------------------------------------------- VP SDE ----
BETA_MIN = 0.1
BETA_MAX = 20.0
SDE_EPS = 1e-3
N_FOURIER = 8


def big_b(t):
    """Integrated beta: B(t) = beta_min t + (beta_max - beta_min) t^2 / 2."""
    return BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t


def mean_coef(t):
    return torch.exp(-0.5 * big_b(t))


def sigma(t):
    return torch.sqrt(-torch.expm1(-big_b(t)))


def _a_of_b(b):
    """A = ln(expm1(B)) (antiderivative of beta/sigma^2 in t)."""
    return math.log(math.expm1(b))


A_EPS = _a_of_b(BETA_MIN * SDE_EPS + 0.5 * (BETA_MAX - BETA_MIN) * SDE_EPS ** 2)
A_ONE = _a_of_b(BETA_MIN + 0.5 * (BETA_MAX - BETA_MIN))
Z_IS = A_ONE - A_EPS  # normaliser of the importance density


def sample_importance_t(n, gen):
    """t ~ beta(t)/sigma(t)^2 on [eps, 1], computed in float64, cast to f32."""
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    y = Z_IS * u + A_EPS
    b_star = torch.nn.functional.softplus(y)  # inverse of A: B = ln(1 + e^y)
    d = BETA_MAX - BETA_MIN
    t = 2.0 * b_star / (BETA_MIN + torch.sqrt(BETA_MIN ** 2 + 2.0 * d * b_star))
    return t.to(torch.float32)


# ------------------------------------------------------------------ data ----
def checkerboard(n, gen):
    u1 = torch.rand(n, generator=gen)
    u2 = torch.rand(n, generator=gen)
    u3 = torch.rand(n, generator=gen)
    x1 = 4.0 * u1 - 2.0
    x2 = u2 - 2.0 * (u3 < 0.5).float() + torch.remainder(torch.floor(x1), 2.0)
    return 2.0 * torch.stack([x1, x2], dim=1)


# ---------------------------------------------------------------- models ----
class Coupling(nn.Module):
    def __init__(self, k, hidden=64):
        super().__init__()
        self.c = k % 2
        self.a = 1 - self.c
        self.net = nn.Sequential(
            nn.Linear(1, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x, ldj):
        xc = x[:, self.c:self.c + 1]
        xa = x[:, self.a]
        out = self.net(xc)
        s = 2.0 * torch.tanh(out[:, 0] / 2.0)
        b = out[:, 1]
        ya = xa * torch.exp(s) + b
        if self.c == 0:
            y = torch.stack([x[:, 0], ya], dim=1)
        else:
            y = torch.stack([ya, x[:, 1]], dim=1)
        return y, ldj + s


class Flow(nn.Module):
    def __init__(self, n_layers=8, hidden=64):
        super().__init__()
        self.layers = nn.ModuleList([Coupling(k, hidden) for k in range(n_layers)])

    def forward(self, x):
        ldj = torch.zeros(x.shape[0], dtype=x.dtype)
        for layer in self.layers:
            x, ldj = layer(x, ldj)
        return x, ldj


class ScoreNet(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        width = 2 + 1 + 2 * N_FOURIER  # 19
        self.net = nn.Sequential(
            nn.Linear(width, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2),
        )
        self.register_buffer(
            "freqs", 2.0 ** torch.arange(N_FOURIER, dtype=torch.float32) / 8.0)

    def forward(self, z, c):
        """z: [B,2], c: [B] = ln sigma(t). Returns eps_hat [B,2]."""
        c1 = c[:, None]
        arg = c1 * self.freqs[None, :]
        # Interleaved [sin(2^0 c), cos(2^0 c), sin(2^1 c), ...] as in the Rust model.
        sc = torch.stack([torch.sin(arg), torch.cos(arg)], dim=2).reshape(arg.shape[0], -1)
        feats = torch.cat([z, c1, sc], dim=1)
        return self.net(feats)


# ------------------------------------------------------------------ loss ----
LOG_2PI = math.log(2.0 * math.pi)


def indm_loss(flow, score, x, gen):
    n = x.shape[0]
    z0, ldj = flow(x)
    flow_nll = -ldj

    t = sample_importance_t(n, gen)
    m_t = mean_coef(t)[:, None]
    s_t = sigma(t)
    noise = torch.randn(z0.shape, generator=gen)
    zt = m_t * z0 + s_t[:, None] * noise
    eps_hat = score(zt, torch.log(s_t))
    dsm = (Z_IS / 2.0) * ((-eps_hat + noise) ** 2).sum(dim=1)

    one = torch.ones(1)
    n_t = torch.randn(z0.shape, generator=gen)
    z_t1 = mean_coef(one) * z0 + sigma(one) * n_t
    prior = 0.5 * (z_t1 ** 2).sum(dim=1) + LOG_2PI

    return ((flow_nll + dsm + prior) / 2.0).mean()


# ------------------------------------------------------------------ train ----
class Trainer:
    def __init__(self, seed):
        torch.manual_seed(seed)
        self.flow = Flow()
        self.score = ScoreNet()
        self.flow_params = list(self.flow.parameters())
        self.score_params = list(self.score.parameters())
        kw = dict(betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
        self.opt_flow = torch.optim.AdamW(self.flow_params, lr=1e-3, **kw)
        self.opt_score = torch.optim.AdamW(self.score_params, lr=1e-3, **kw)
        self.params = self.flow_params + self.score_params
        with torch.no_grad():
            self.ema = [p.detach().clone() for p in self.params]
        self.n_updates = 0
        self.gen = torch.Generator().manual_seed(seed)

    def n_params(self):
        return sum(p.numel() for p in self.params)

    def step(self, batch):
        x = checkerboard(batch, self.gen)
        loss = indm_loss(self.flow, self.score, x, self.gen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.flow_params, 1.0)
        torch.nn.utils.clip_grad_norm_(self.score_params, 1.0)
        self.opt_flow.step()
        self.opt_score.step()
        self.opt_flow.zero_grad(set_to_none=True)
        self.opt_score.zero_grad(set_to_none=True)
        with torch.no_grad():
            n = self.n_updates
            decay = min(0.999, (1.0 + n) / (10.0 + n))
            # ema = decay*ema + (1-decay)*p  ==  ema.lerp_(p, 1-decay)
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.params],
                                 1.0 - decay)
        self.n_updates += 1
        return loss.detach()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="timed steps")
    ap.add_argument("--warmup", type=int, default=30, help="untimed warm-up steps")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads; also set OMP_NUM_THREADS to this")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    tr = Trainer(args.seed)
    for _ in range(args.warmup):
        tr.step(args.batch)

    loss = torch.tensor(float("nan"))
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = tr.step(args.batch)
    final_loss = float(loss)  # forces completion (CPU is synchronous anyway)
    seconds = time.perf_counter() - t0

    print(json.dumps({
        "framework": "pytorch",
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "params": tr.n_params(),
        "steps": args.steps,
        "seconds": round(seconds, 6),
        "steps_per_second": round(args.steps / seconds, 3) if seconds > 0 else None,
        "final_loss": final_loss,
    }))


if __name__ == "__main__":
    main()
