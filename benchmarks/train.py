"""Training speed: robustjax's train step of every supervised baseline defense vs an equivalent plain PyTorch
loop (CPU).

    python benchmarks/train.py --quick                    # batch 16, few steps: a smoke run
    python benchmarks/train.py --write                    # batch 128, the table in docs/benchmarks.md
    python benchmarks/train.py --models lenet --defenses standard,trades --pgd-steps 40

One row per (model, defense); defenses (``--defenses``, default all): standard, pgd_at, fgsm_at, mix_pgd,
logit_pairing, trades, distillation, label_smoothing, gda_relu, gda_brelu, vat.

robustjax: each defense is built from its own MNIST config (``configs/<name>_mnist.py``; ``gda_relu`` is
``gda_mnist``, ``gda_brelu`` is ``gda_mnist`` with the config argument ``brelu=True``) with the data and the
model swapped for the benchmark's (``common.SPECS``; the config's ``activation`` / ``brelu_t`` are kept, so
GDA + BReLU trains the bounded ReLU), Adam 1e-3, by ``experiment.build``; its own ``train_step`` is compiled
exactly as the training loop compiles it (``robustjax.train.loop._compile_step``: ``robustjax.xla.jit``
with the state donated, step key by ``fold_in``) and fed the returned state each step. Changed from the
configs: every ``defense.attack`` that is a PGD becomes PGD-``--pgd-steps`` with random start at the
model's radius (LeNet eps 0.3 step 0.01; CIFAR eps 8/255 step 2/255; the configs have PGD-40 on MNIST),
FGSM-AT's FGSM gets the model's eps, and ``defense.eps_ramp_epochs`` is 0 (no curriculum: the full eps from
the first step). Everything else that sets a step's cost is the config's: FGSM-AT's and M-PGD's
``alpha`` 0.5, logit pairing's ``pairing_weight`` 0.5, TRADES' ``beta`` 6, distillation's T = 100, label
smoothing's true-label weight 0.9, GDA's N = 10 copies (sigma 0.3, clean example kept, copies clipped),
VAT's eps 2.1, xi 1e-6, 1 power iteration, alpha 1.

What one step computes (both frameworks; B = ``--batch``; "eval mode" is the model as deployed, which for
these two models, with no BatchNorm and no dropout, is the same function as train mode):

* standard: CE on the clean batch; one forward + backward of B.
* pgd_at (Madry): PGD on CE against the model in eval mode (random start uniform in the eps ball, sign
  steps, projection and clipping), then one optimizer step on CE of the B adversarial examples.
* fgsm_at (Goodfellow): FGSM (one input gradient of CE, eval mode), then one step on
  ``alpha * CE(x) + (1 - alpha) * CE(x_fgsm)`` with clean and adversarial examples as one batch of 2B.
* mix_pgd (Kannan et al.'s mixed minibatch): PGD as pgd_at, then ``alpha * CE(x) + (1 - alpha) *
  CE(x_adv)`` on one batch of 2B (B clean + B adversarial).
* logit_pairing (ALP): as mix_pgd, plus ``pairing_weight * mean((z(x) - z(x_adv))^2)``.
* trades: one eval-mode forward of the clean batch (the fixed p(x)), PGD ascending ``KL(p(x) || p(x'))``
  from the uniform random start, then ``CE(f(x), y) + beta * mean KL(p(x) || p(x_adv))`` with the clean and
  adversarial batches run as two forwards of B, the KL differentiated through both.
* distillation: the **student** phase's step (the second phase; the teacher phase is a plain CE step at
  temperature T and costs what ``standard`` does): a forward of the fixed teacher (eval mode, no
  gradient) for its soft labels ``softmax(z_t / T)``, then one step of the student on the cross-entropy
  of ``softmax(z_s / T)`` against them. Teacher and student are the same architecture.
* label_smoothing: CE against targets with 0.9 on the true class and 0.1 / 9 on each other one
  (optax's / PyTorch's ``label_smoothing`` = 1/9); the cost of standard.
* gda_relu / gda_brelu (Zantedeschi et al.): the batch with N Gaussian copies of each example
  (``clip(x + sigma * N(0, I), 0, 1)``), B (1 + N) rows, one step on their mean CE; gda_brelu with every
  hidden activation ``min(max(h, 0), 1)`` (PyTorch: ``clamp``).
* vat (Miyato et al.): the clean forward (train mode, kept for the loss); power iteration: an input
  gradient of ``sum KL(p(x) || p(x + xi * d))`` w.r.t. ``d`` (weights fixed), per power iteration; then
  ``CE(f(x), y) + alpha * mean KL(p(x) || p(x + r_adv))``, ``r_adv = eps * d / ||d||_2``, the gradient
  through the clean and the perturbed forward.

img/s counts the B examples of the batch per step (for GDA: not the B (1 + N) rows it trains on; for
the mixed batches: not the 2B rows). The PyTorch side is what a PyTorch user would write: the twins of
``common.py`` (with the bounded ReLU in the forward for gda_brelu), ``torch.autograd.grad`` for the
input gradients, ``torch.optim.Adam`` (lr 1e-3), ``zero_grad / backward / step``; its numbers (alpha,
beta, T, N, sigma, eps, xi, power iterations, attack) are read from the same config. Both sides start from
the same freshly initialised weights (robustjax's init copied into the twins, the teacher's too), so the
first step's loss (printed) agrees exactly where the step is deterministic and closely where it draws
random numbers (attack starts, GDA's noise, VAT's direction), a check that both compute the same objective.

Both sides cycle over the same ``--batches`` real training batches of ``--batch`` images. Each measurement
is the median over ``--repeats`` timed blocks of a few steps (``STEPS``: 10 for steps of about one
forward + backward, fewer for the costlier ones, 2 for those with a PGD of ``--pgd-steps`` iterations;
``--steps`` sets them all) after a warm-up block that includes compilation; the two frameworks alternate
block by block. torch uses ``set_num_threads(2)``; XLA uses both cores by default. Models: GanDef's LeNet
on MNIST, and the CIFAR-10 CNN of ``common.py`` (ConvPool-CNN-C, width 0.25, 2x2 pools) on the CIFAR-10
subset.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import baselines_mnist  # noqa: E402

EPS = {"lenet": (0.3, 0.01), "cifar_cnn": (8 / 255, 2 / 255)}
# defense row -> (config file, config argument): the baselines table's rows, less the two that transform
# their input (feature squeezing, Defense-GAN): their cost is in inference, not in a train step
CONFIGS = {k: v for k, v in baselines_mnist.ROWS.items() if k not in ("feature_squeezing", "defense_gan")}
DEFENSES = tuple(CONFIGS)
PGD_ROWS = ("pgd_at", "mix_pgd", "logit_pairing", "trades")
# Train steps per timed block (about 0.5-2 s each at batch 128 on the 2-core CPU): 10 for a step of about
# one forward + backward of B, 2 for a step with a PGD of --pgd-steps iterations, and in between by cost:
# FGSM-AT (an input gradient of B + a step on 2B) and VAT (3 forwards, 2 backwards of B) ~3x standard;
# GDA (one step on 11 B rows) ~11x.
STEPS = {"standard": 10, "label_smoothing": 10, "distillation": 10, "fgsm_at": 4, "vat": 4, "gda_relu": 1,
         "gda_brelu": 1, **{d: 2 for d in PGD_ROWS}}


def robustjax_config(model: str, defense: str, batch: int, pgd_steps: int):
    from runs import load_config

    c = load_config(*CONFIGS[defense])
    spec = common.SPECS[model]
    for k, v in spec["data"].items():
        c.data[k] = v
    c.data.batch_size = batch
    c.data.train_size = max(batch * 8, 1024)
    # the benchmark's model; the config's activation (GDA + BReLU: "brelu", t = 1) is kept
    activation = {k: c.model[k] for k in ("activation", "brelu_t") if k in c.model}
    c.model = type(c.model)({**spec["model"], **activation})
    c.train.progress = False
    c.train.optimizer.learning_rate = 1e-3
    eps, step = EPS[model]
    attack = c.defense.get("attack")
    if attack is not None and attack["attack"] == "pgd":
        c.defense.attack = {"attack": "pgd", "eps": eps, "step_size": step, "num_steps": pgd_steps,
                            "random_start": True}
    elif attack is not None and attack["attack"] == "fgsm":
        c.defense.attack = {"attack": "fgsm", "eps": eps}
    elif attack is not None:
        raise ValueError(f"{defense}: no benchmark setting for a train-time {attack['attack']!r}")
    if "eps_ramp_epochs" in c.defense:
        c.defense.eps_ramp_epochs = 0.0
    return c


def describe(defense: str, config, pgd_steps: int) -> str:
    """The table's label of a row: the defense and the settings that set its step's cost."""
    d = config.defense
    pgd = f"PGD-{pgd_steps}, random start"
    if defense == "standard":
        return "standard"
    if defense == "pgd_at":
        return f"PGD-AT ({pgd})"
    if defense == "fgsm_at":
        return f"FGSM-AT (FGSM; alpha {d.alpha:g}, B clean + B adv)"
    if defense == "mix_pgd":
        return f"Mix PGD ({pgd}; alpha {d.alpha:g}, B clean + B adv)"
    if defense == "logit_pairing":
        return f"logit pairing ({pgd}; B clean + B adv, lambda {d.pairing_weight:g})"
    if defense == "trades":
        return f"TRADES (PGD-{pgd_steps} on the KL, random start; beta {d.beta:g})"
    if defense == "distillation":
        return f"distillation: student step (teacher forward + student step at T {d.temperature:g})"
    if defense == "label_smoothing":
        return f"label smoothing (true label {d.true_label_weight:g})"
    if defense in ("gda_relu", "gda_brelu"):
        act = "ReLU" if defense == "gda_relu" else f"BReLU t {config.model.brelu_t:g}"
        return f"GDA + {act} (N {d.copies}, sigma {d.sigma:g}: {1 + d.copies} B rows)"
    if defense == "vat":
        return f"VAT ({d.power_iterations} power iteration(s), xi {d.xi:g}, eps {d.eps:g})"
    raise ValueError(defense)


def robustjax_runner(config, n_batches: int, steps: int):
    """Returns (run_block, batches as numpy, the initial params as numpy {network: params}):
    run_block() performs ``steps`` train steps and blocks. Distillation: the student phase's step."""
    from robustjax import experiment
    from robustjax.train import loop

    batch = config.data.batch_size
    d, train_ds, _, _, _ = experiment.build(config)
    batches_np = [train_ds.get(np.arange(i * batch, (i + 1) * batch)) for i in range(n_batches)]
    batches = [jax.tree.map(jnp.asarray, bt) for bt in batches_np]
    state = d.init(jax.random.PRNGKey(0), batches[0])
    params = {k: jax.device_get(v.params) for k, v in state.items()}  # before the first step donates them
    # the only phase; distillation's second, "student" (its first, "teacher", is a plain CE step at T)
    phase = d.phases[-1]
    assert len(d.phases) == 1 or phase.name == "student", [ph.name for ph in d.phases]
    step_fn = loop._compile_step(phase.train_step, jax.random.PRNGKey(1))
    holder = {"state": state, "i": 0, "first_loss": None}

    def run_block():
        s = holder["state"]
        metrics = None
        for _ in range(steps):
            i = holder["i"]
            s, metrics = step_fn(s, batches[i % n_batches], jnp.asarray(i, jnp.int32))
            if i == 0:
                holder["first_loss"] = metrics["loss"]
            holder["i"] = i + 1
        jax.block_until_ready((s, metrics))
        holder["state"] = s

    return run_block, batches_np, params, holder


def torch_net(model: str, params, brelu_t: float | None = None):
    """The twin of ``common.py`` with ``params`` (flax, copied); ``brelu_t``: every hidden activation is the
    bounded ReLU ``clamp(h, 0, t)`` instead of ReLU (the twins hard-code ReLU)."""
    torch = common._torch()
    if model == "lenet":
        net = common.torch_lenet()
        common.copy_to_torch(params, net, {"fc1": (7, 7, 64)})
    else:
        net = common.torch_convpool()
        common.copy_to_torch(params, net)
    net.train()
    if brelu_t is None:
        return net
    act = lambda h: torch.clamp(h, 0.0, brelu_t)  # noqa: E731
    pool = torch.max_pool2d
    if model == "lenet":
        def forward(x):
            h = pool(act(net.conv1(x)), 2)
            h = pool(act(net.conv2(h)), 2)
            return net.head(act(net.fc1(h.flatten(1))))
    else:
        def forward(x):
            h = act(net.conv3(act(net.conv2(act(net.conv1(x))))))
            h = pool(h, 2)
            h = act(net.conv6(act(net.conv5(act(net.conv4(h))))))
            h = pool(h, 2)
            h = act(net.conv8(act(net.conv7(h))))
            return net.head(h).mean(dim=(2, 3))
    net.forward = forward
    return net


def torch_runner(model: str, defense: str, config, batches_np, params, steps: int):
    torch = common._torch()
    F = torch.nn.functional
    torch.manual_seed(0)
    hp = config.defense
    brelu_t = float(config.model.brelu_t) if config.model.get("activation", "relu") == "brelu" else None
    net = torch_net(model, params["classifier"], brelu_t)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = [(torch.from_numpy(common.nchw(np.asarray(bt["image"], np.float32))),
             torch.from_numpy(np.asarray(bt["label"]).astype(np.int64))) for bt in batches_np]
    attack = dict(hp.attack) if hp.get("attack") else None
    holder = {"i": 0, "first_loss": None}

    def kl(p_logits, q_logits):
        """Per-example KL(softmax(p) || softmax(q))."""
        log_p = F.log_softmax(p_logits, dim=1)
        return (log_p.exp() * (log_p - F.log_softmax(q_logits, dim=1))).sum(dim=1)

    def fgsm(x, y):
        eps = attack["eps"]
        net.eval()
        x = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(net(x), y), x)
        net.train()
        return torch.clamp(x.detach() + eps * g.sign(), 0, 1)

    def pgd(x, y, loss_fn=None):
        """L-inf PGD from a uniform random start ascending ``loss_fn(logits)`` (default CE), eval mode."""
        loss_fn = loss_fn or (lambda logits: F.cross_entropy(logits, y))
        eps, alpha = attack["eps"], attack["step_size"]
        net.eval()
        x_adv = torch.clamp(x + torch.empty_like(x).uniform_(-eps, eps), 0, 1).detach()
        for _ in range(attack["num_steps"]):
            x_adv.requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn(net(x_adv)), x_adv)
            x_adv = x_adv.detach() + alpha * g.sign()
            x_adv = torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0, 1).detach()
        net.train()
        return x_adv

    def mixed(x, y, x_adv, alpha, pairing_weight=0.0):
        clean, adv = net(torch.cat([x, x_adv])).chunk(2)
        loss = alpha * F.cross_entropy(clean, y) + (1 - alpha) * F.cross_entropy(adv, y)
        if pairing_weight:
            loss = loss + pairing_weight * (clean - adv).pow(2).mean()
        return loss

    if defense == "distillation":
        teacher = torch_net(model, params["teacher"]).eval()
        T = float(hp.temperature)
    if defense in ("gda_relu", "gda_brelu"):
        copies, sigma = int(hp.copies), float(hp.sigma)
    if defense == "label_smoothing":
        k = 10
        smoothing = (1.0 - float(hp.true_label_weight)) * k / (k - 1.0)  # label_smoothing.smoothing_alpha

    def l2_normalize(d):
        d = d / (d.abs().amax(dim=(1, 2, 3), keepdim=True) + 1e-12)
        return d / torch.sqrt(d.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-12)

    def loss_of(x, y):
        if defense == "standard":
            return F.cross_entropy(net(x), y)
        if defense == "label_smoothing":
            return F.cross_entropy(net(x), y, label_smoothing=smoothing)
        if defense == "pgd_at":
            return F.cross_entropy(net(pgd(x, y)), y)
        if defense == "fgsm_at":
            return mixed(x, y, fgsm(x, y), float(hp.alpha))
        if defense == "mix_pgd":
            return mixed(x, y, pgd(x, y), float(hp.alpha))
        if defense == "logit_pairing":
            return mixed(x, y, pgd(x, y), float(hp.alpha), float(hp.pairing_weight))
        if defense == "trades":
            net.eval()
            with torch.no_grad():
                p_clean = net(x)
            net.train()
            x_adv = pgd(x, y, lambda logits: kl(p_clean, logits).sum())
            clean, adv = net(x), net(x_adv)
            return F.cross_entropy(clean, y) + float(hp.beta) * kl(clean, adv).mean()
        if defense == "distillation":
            with torch.no_grad():
                soft = F.softmax(teacher(x) / T, dim=1)
            return -(soft * F.log_softmax(net(x) / T, dim=1)).sum(dim=1).mean()
        if defense in ("gda_relu", "gda_brelu"):
            noisy = x.unsqueeze(0) + sigma * torch.randn((copies,) + tuple(x.shape))
            if hp.clip:
                noisy = noisy.clamp(0, 1)
            xs, ys = noisy.flatten(0, 1), y.repeat(copies)
            if hp.keep_clean:
                xs, ys = torch.cat([x, xs]), torch.cat([y, ys])
            return F.cross_entropy(net(xs), ys)
        if defense == "vat":
            logits = net(x)
            p = logits.detach()
            d = torch.randn_like(x)
            for _ in range(int(hp.power_iterations)):
                d = (float(hp.xi) * l2_normalize(d)).requires_grad_(True)
                (d,) = torch.autograd.grad(kl(p, net(x + d)).sum(), d)
            r_adv = float(hp.eps) * l2_normalize(d)
            return F.cross_entropy(logits, y) + float(hp.alpha) * kl(p, net(x + r_adv)).mean()
        raise ValueError(defense)

    def run_block():
        for _ in range(steps):
            x, y = data[holder["i"] % len(data)]
            net.train()
            opt.zero_grad(set_to_none=True)
            loss = loss_of(x, y)
            loss.backward()
            opt.step()
            if holder["i"] == 0:
                holder["first_loss"] = loss.item()
            holder["i"] += 1

    return run_block, holder


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lenet,cifar_cnn")
    p.add_argument("--defenses", default=",".join(DEFENSES),
                   help=f"comma-separated, from {', '.join(DEFENSES)} (default: all)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--pgd-steps", type=int, default=10,
                   help="iterations of the train-time PGD (pgd_at, mix_pgd, logit_pairing, trades)")
    p.add_argument("--steps", type=int, default=0,
                   help="train steps per timed block for every row (0: per defense, see STEPS)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    for model in models:
        if model not in EPS:
            p.error(f"--models: unknown {model!r}; choose from {sorted(EPS)}")
    defenses = [d for d in args.defenses.split(",") if d]
    unknown = [d for d in defenses if d not in CONFIGS]
    if unknown or not defenses:
        what = f"unknown {unknown}" if unknown else "none given"
        p.error(f"--defenses: {what}; choose from {', '.join(DEFENSES)}")
    if args.quick:
        args.batch, args.repeats, args.pgd_steps = 16, 2, 2
    load_start = common.loadavg()
    t0 = time.perf_counter()
    rows = []
    for model in models:
        for defense in defenses:
            steps = args.steps or STEPS[defense]
            config = robustjax_config(model, defense, args.batch, args.pgd_steps)
            rj, batches, params, rj_out = robustjax_runner(config, args.batches, steps)
            pt, pt_out = torch_runner(model, defense, config, batches, params, steps)
            times = {"robustjax": [], "pytorch": []}
            rj()  # compile + warm-up
            pt()
            for _ in range(args.repeats):
                for name, fn in (("robustjax", rj), ("pytorch", pt)):
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
            ips = {k: args.batch * steps / float(np.median(v)) for k, v in times.items()}
            label = describe(defense, config, args.pgd_steps)
            print(f"{model} {label}, {steps} steps/block: robustjax {ips['robustjax']:.1f} img/s, pytorch "
                  f"{ips['pytorch']:.1f} img/s, ratio {ips['robustjax'] / ips['pytorch']:.2f}; first-step loss "
                  f"robustjax {float(rj_out['first_loss']):.4f}, pytorch {pt_out['first_loss']:.4f}  "
                  f"[load {common.loadavg()}]", flush=True)
            rows.append([model, label, steps, f"{ips['robustjax']:.1f}", f"{ips['pytorch']:.1f}",
                         f"{ips['robustjax'] / ips['pytorch']:.2f}"])
    total = time.perf_counter() - t0
    table = common.md_table(["model", "defense: train step", "steps / block", "robustjax img/s", "PyTorch img/s",
                             "robustjax / PyTorch"], rows)
    print()
    print(table)
    if args.write:
        cmd = "python benchmarks/train.py " + " ".join(sys.argv[1:] if argv is None else argv)
        eps_note = "LeNet eps 0.3, PGD step 0.01; CIFAR eps 8/255, PGD step 2/255"
        body = "\n".join([
            f"Training images per second (higher is better), batch {args.batch}, Adam 1e-3, CPU: one row per "
            "model and supervised baseline defense. robustjax runs the defense's own `train_step`, built from "
            "its MNIST config (`configs/<defense>_mnist.py`; GDA + BReLU: `gda_mnist.py:brelu=True`) with the "
            "benchmark's data and model, jitted as the training loop does (state donated); PyTorch runs an "
            "equivalent plain loop on the same architecture (the twins in `benchmarks/common.py`, with "
            "`clamp(h, 0, 1)` activations for GDA + BReLU), starting from the same initial weights. Changed "
            f"from the configs: every train-time PGD is PGD-{args.pgd_steps} with random start and FGSM-AT's "
            f"FGSM has the model's eps ({eps_note}), no eps curriculum; the other settings are the configs'. "
            "The train-time PGD and FGSM attack the model in eval mode (the same function as train mode for "
            "these two models: no BatchNorm, no dropout). What a step computes: standard: CE on B clean images. "
            "PGD-AT: PGD on CE, one step on CE of the B adversarial images. FGSM-AT: FGSM, one step on "
            "0.5 CE(x) + 0.5 CE(x_fgsm) over one batch of 2B. Mix PGD: PGD, then the same 2B mix. Logit "
            "pairing: Mix PGD plus 0.5 mean((z(x) - z(x_adv))^2). TRADES: a clean forward for p(x), PGD "
            "ascending KL(p(x) || p(x')) from a uniform random start, one step on CE(x) + 6 KL over two forwards "
            "of B. Distillation: the student phase's step (the teacher phase costs what standard does): a "
            "forward of the fixed teacher for its soft labels at T = 100, one step of the student at T = 100 "
            "against them. Label smoothing: CE with true-label weight 0.9. GDA (+ ReLU, + BReLU t = 1): one "
            "step on the batch and N = 10 Gaussian copies of each example (sigma 0.3, clipped), 11B rows. "
            "VAT: the clean forward, one power iteration (an input gradient at xi = 1e-6), one step on CE + "
            "KL(p(x) || p(x + r_adv)) (eps 2.1). img/s counts the B images of a batch (not GDA's 11B rows or "
            f"the mixed 2B). Median over {args.repeats} timed blocks of the steps per block in the table after "
            f"a warm-up block (compilation excluded), frameworks alternating; {args.batches} real training "
            "batches cycled.",
            "",
            *common.machine_lines(cmd),
            f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {common.loadavg()} "
            f"(2 cores shared with other processes); total wall time {total / 60:.1f} min",
            "",
            table,
        ])
        path = os.path.join(common.ROOT, "docs", "benchmarks.md")
        common.write_section(path, "Training speed", body)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
