"""The report's figures (robustjax/evaluate/figures.py): the arrays behind them on a linear model whose
gradients and predictions are computed here by hand, the drawings' files and layouts, the config fields
and their checks, and the Defense contract's optional generator hooks."""

import math

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from robustjax import attacks
from robustjax.config import base_config, validate
from robustjax.data import ArrayDataset
from robustjax.defenses.base import Defense, Phase
from robustjax.evaluate import figures

H, W, K = 4, 4, 3


def _linear(seed=0):
    """A linear classifier on 4x4x1 images: logits = flat(x) @ W (a bare ``state -> logits_fn``)."""
    w = np.asarray(np.random.default_rng(seed).normal(size=(H * W, K)), np.float32)
    return (lambda state: (lambda x: x.reshape(x.shape[0], -1) @ state)), w


def _images(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, size=(n, H, W, 1)).astype(np.float32), rng.integers(0, K, n).astype(np.int32)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _ce_grad(w, x, y):
    """d CE(flat(x) @ w, y) / d x, by hand."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    p = _softmax(flat @ w)
    p[np.arange(len(y)), y] -= 1.0
    return (p @ w.T).reshape(x.shape)


def test_defaults_agree_with_base_config_and_validate():
    c = base_config()
    assert list(c.eval.figures) == figures.DEFAULTS["figures"] == list(figures.FIGURES)
    assert c.eval.saliency.to_dict() == figures.DEFAULTS["saliency"]
    assert c.eval.decision_plane.to_dict() == figures.DEFAULTS["decision_plane"]
    validate(c)
    assert figures.options(c.eval) == {k: (list(v) if k == "figures" else v) for k, v in figures.DEFAULTS.items()}


@pytest.mark.parametrize("field, value, message", [
    ("figures", ["curves", "salency"], "config.eval.figures[1]: 'salency' is not a figure (did you mean 'saliency'?)"),
    ("figures", "curves", "config.eval.figures: must be a list"),
    ("decision_plane.resolution", 40, "config.eval.decision_plane.resolution: must be odd"),
    ("decision_plane.resolution", 1, "config.eval.decision_plane.resolution: must be an integer >= 3"),
    ("decision_plane.m", 0, "config.eval.decision_plane.m: must be an integer >= 1"),
    ("decision_plane.sigma", -0.1, "config.eval.decision_plane.sigma: must be a finite number >= 0"),
    ("decision_plane.scale", float("nan"), "config.eval.decision_plane.scale"),
    ("decision_plane.direction", "diagonal", "config.eval.decision_plane.direction: 'diagonal' is not one of"),
    ("saliency.num_images", 0, "config.eval.saliency.num_images: must be an integer >= 1"),
    ("saliency.eps", [0.1, -1.0], "config.eval.saliency.eps[1]: must be a finite number >= 0"),
    ("saliency.attack", "pgd40", "config.eval.saliency.attack: 'pgd40' is neither in config.eval.curves"),
    ("num_pictures", -1, "config.eval.num_pictures: must be a non-negative integer"),
])
def test_validate_names_the_bad_figure_field(field, value, message):
    c = base_config()
    node = c.eval
    *parents, last = field.split(".")
    for p in parents:
        node = node[p]
    del node[last]  # (a ConfigDict keeps a field's type; a wrong type is what some cases test)
    node[last] = value
    with pytest.raises(ValueError) as e:
        validate(c)
    assert message in str(e.value)


def test_an_unknown_decision_plane_field_is_refused_with_the_closest_name():
    c = base_config()
    c.eval.decision_plane.sigmaa = 0.1
    with pytest.raises(ValueError, match=r"config.eval.decision_plane.sigmaa: unknown field \(did you mean 'sigma'\?\)"):
        validate(c)


def test_decision_plane_on_a_linear_model_matches_a_hand_computation():
    defense, w = _linear()
    x, y = _images(3)
    model = figures._Model(defense, jnp.asarray(w), jax.random.PRNGKey(0))
    r = 7
    # sigma = 0: the smoothed gradient is the gradient at x, which is known in closed form.
    d = figures.decision_plane(model, x, y, jax.random.PRNGKey(1), sigma=0.0, m=2, scale=3.0, resolution=r,
                               direction="random", threat_ball=("linf", 0.25))
    u, v = d["u_dir"].astype(np.float64), d["v_dir"].astype(np.float64)
    g = _ce_grad(w, x, y).reshape(3, -1)
    np.testing.assert_allclose(u, g / np.linalg.norm(g, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose((u * v).sum(1), 0.0, atol=1e-5)
    # Every grid point is coloured by the classifier's prediction at clip(x + a u + b v).
    grid = np.linspace(-3.0, 3.0, r)
    np.testing.assert_allclose(d["grid"], grid, atol=1e-6)
    for n in range(3):
        for i, b in enumerate(grid):
            for j, a in enumerate(grid):
                point = np.clip(x[n].ravel() + a * u[n] + b * v[n], 0, 1)
                assert d["classes"][n, i, j] == int(np.argmax(point @ w)), (n, i, j)
                assert d["ball"][n, i, j] == pytest.approx(np.abs(a * u[n] + b * v[n]).max(), abs=1e-5)
    # The centre is the image itself: the model's prediction there.
    np.testing.assert_array_equal(d["classes"][:, r // 2, r // 2], np.argmax(x.reshape(3, -1) @ w, -1))
    np.testing.assert_array_equal(d["pred"], np.argmax(x.reshape(3, -1) @ w, -1))
    assert int(d["num_classes"]) == K


def test_decision_plane_smooths_over_noise_and_gradient_direction_is_the_orthogonal_part():
    defense, w = _linear(3)
    x, y = _images(2, 4)
    model = figures._Model(defense, jnp.asarray(w), jax.random.PRNGKey(0))
    a = figures.decision_plane(model, x, y, jax.random.PRNGKey(5), sigma=0.3, m=16, scale=1.0, resolution=3,
                               direction="gradient")
    b = figures.decision_plane(model, x, y, jax.random.PRNGKey(5), sigma=0.0, m=1, scale=1.0, resolution=3,
                               direction="gradient")
    # Noise moves the averaged gradient away from the gradient at x (the softmax is not linear).
    assert not np.allclose(a["u_dir"], b["u_dir"], atol=1e-4)
    # "gradient": v is the part of the plain gradient orthogonal to u (Wu et al.'s h).
    g = _ce_grad(w, x, y).reshape(2, -1)
    u = a["u_dir"].astype(np.float64)
    h = g - (g * u).sum(1, keepdims=True) * u
    np.testing.assert_allclose(a["v_dir"], h / np.linalg.norm(h, axis=1, keepdims=True), atol=1e-4)
    # Same key, same plane.
    c = figures.decision_plane(model, x, y, jax.random.PRNGKey(5), sigma=0.3, m=16, scale=1.0, resolution=3,
                               direction="gradient")
    np.testing.assert_array_equal(a["u_dir"], c["u_dir"])


def test_decision_plane_png_centre_has_the_predicted_class_colour(tmp_path):
    defense, w = _linear()
    x, y = _images(2)
    model = figures._Model(defense, jnp.asarray(w), jax.random.PRNGKey(0))
    d = figures.decision_plane(model, x, y, jax.random.PRNGKey(1), sigma=0.05, m=4, scale=2.0, resolution=5)
    drawn = figures.draw_decision_plane(d, str(tmp_path / "plane.png"))
    img = matplotlib.image.imread(drawn["path"])[..., :3]
    colors = figures.class_colors(K)[:, :3]
    for n, (col, row) in enumerate(drawn["centres"]):
        # A few pixels off the centre (off the dashed axes), still inside the centre cell.
        pixel = img[int(round(row)) - 4, int(round(col)) + 4]
        expected = colors[int(np.argmax(x[n].ravel() @ w))]
        np.testing.assert_allclose(pixel, expected, atol=0.02)
        assert d["classes"][n, 2, 2] == np.argmax(x[n].ravel() @ w)


def test_saliency_is_the_absolute_input_gradient_of_clean_and_adversarial_images():
    defense, w = _linear(2)
    x, y = _images(3, 2)
    model = figures._Model(defense, jnp.asarray(w), jax.random.PRNGKey(0))
    atk = attacks.resolve({"attack": "pgd", "rel_step_size": 0.25, "num_steps": 5}, require_eps=False)
    d = figures.saliency(model, atk, x, y, [0.05, 0.2], jax.random.PRNGKey(3))
    assert d["images"].shape == (3, 3, H, W, 1) and d["saliency"].shape == (3, 3, H, W)
    np.testing.assert_array_equal(d["images"][0], x)
    for row, eps in ((1, 0.05), (2, 0.2)):
        assert np.abs(d["images"][row] - x).max() <= eps + 1e-6
        assert np.abs(d["images"][row] - x).max() > eps / 2  # the attack moved
    for row in range(3):
        expected = np.abs(_ce_grad(w, d["images"][row], y))[..., 0]
        np.testing.assert_allclose(d["saliency"][row], expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(d["pred"][row], np.argmax(d["images"][row].reshape(3, -1) @ w, -1))


def _eval_cfg(**kw):
    c = base_config()
    c.eval.attacks = {"fgsm": {"attack": "fgsm", "eps": 0.1}, "pgd": {"attack": "pgd", "eps": 0.2, "step_size": 0.05,
                                                                      "num_steps": 3}}
    c.eval.curves = {"pgdc": {"attack": "pgd", "eps_grid": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                              "rel_step_size": 0.25, "num_steps": 2}}
    for k, v in kw.items():
        c.eval[k] = v
    validate(c)
    return c.eval


def test_saliency_source_and_threat_come_from_the_suite():
    e = _eval_cfg()
    label, atk, eps = figures._saliency_source(e, figures.options(e)["saliency"])
    assert label == "pgdc" and atk.name == "pgd"
    assert len(eps) == figures.MAX_SALIENCY_EPS and eps[-1] == 0.7 and 0.0 not in eps  # spread, largest kept
    e.saliency.attack, e.saliency.eps = "fgsm", []
    label, atk, eps = figures._saliency_source(e, figures.options(e)["saliency"])
    assert (label, atk.name, eps) == ("fgsm", "fgsm", [0.1, 0.2])  # the eps of every linf attack
    e.saliency.eps = [0.05]
    assert figures._saliency_source(e, figures.options(e)["saliency"])[2] == [0.05]
    assert figures.threat(e) == ("linf", 0.7)


def _defense_with_hooks(w):
    def samples(state, key, n):
        return jax.random.uniform(key, (n, H, W, 1))

    def reconstruct(state):
        return lambda x: 1.0 - x

    return Defense(name="toygan", init=lambda k, b: w, phases=(Phase("p", 1, lambda s, b, k: (s, {})),),
                   classifier=lambda state: (lambda x: x.reshape(x.shape[0], -1) @ state),
                   samples=samples, reconstruct=reconstruct)


def test_compute_draws_the_generator_hooks_of_the_defense_contract(tmp_path):
    _, w = _linear()
    defense = _defense_with_hooks(jnp.asarray(w))
    x, y = _images(6)
    ds = ArrayDataset(x, y)
    x_adv = np.clip(x + 0.1, 0, 1)
    pictures = {"fgsm": (x[:4], x_adv[:4], y[:4], np.argmax(x_adv[:4].reshape(4, -1) @ w, -1))}
    e = _eval_cfg(figures=["examples", "samples"])
    data = figures.compute(defense, jnp.asarray(w), ds, e, jax.random.PRNGKey(0), pictures=pictures)
    assert set(data) == {"examples", "samples"}
    s = data["samples"]
    assert s["samples"].shape == (16, H, W, 1)
    np.testing.assert_allclose(s["gx"], 1.0 - x[:4], atol=1e-6)
    np.testing.assert_allclose(s["gx_adv"], 1.0 - x_adv[:4], atol=1e-6)
    np.testing.assert_array_equal(data["examples"]["clean_pred"], np.argmax(x[:4].reshape(4, -1) @ w, -1))
    path = figures.draw_samples(s, str(tmp_path / "samples.png"))
    img = matplotlib.image.imread(path)
    # 4 rows of G's inputs/outputs + 2 rows of 8 samples: taller than wide at 8 columns? rows > columns/2
    assert img.shape[0] > 0.6 * img.shape[1]
    # A defense without hooks has no samples figure.
    plain = Defense(name="plain", init=defense.init, phases=defense.phases, classifier=defense.classifier)
    assert "samples" not in figures.compute(plain, jnp.asarray(w), ds, e, jax.random.PRNGKey(0), pictures=pictures)


def test_atgan_exposes_its_generator_as_reconstruct():
    from robustjax import defenses
    from robustjax.data import DataInfo
    from tests.test_config import load_config

    c = load_config("atgan_mnist.py", "smoke")
    info = DataInfo("mnist-standin", (28, 28, 1), 10, 64, 32)
    d = defenses.make(c, info, 2)
    batch = {"image": np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype(np.float32),
             "label": np.zeros(2, np.int32)}
    state = jax.jit(d.init)(jax.random.PRNGKey(0), batch)
    out = d.reconstruct(state)(batch["image"])
    assert out.shape == batch["image"].shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # D_c(G(x)) is the classifier: reconstruct is the G inside it.
    disc = state["discriminator"]
    from robustjax.defenses.base import eval_variables
    logits = disc.apply_fn(eval_variables(disc), out, train=False)[0]
    np.testing.assert_allclose(logits, d.classifier(state)(batch["image"]), atol=1e-5)


def _png_shape(path):
    return matplotlib.image.imread(path).shape


def test_saliency_and_examples_layouts_grow_with_rows_and_columns(tmp_path):
    rng = np.random.default_rng(0)

    def sal(e, n):
        return {"eps": np.linspace(0.1, 0.3, e), "images": rng.uniform(size=(e + 1, n, 8, 8, 1)),
                "saliency": rng.uniform(size=(e + 1, n, 8, 8)), "pred": np.zeros((e + 1, n), int),
                "labels": np.zeros(n, int), "attack": np.asarray("pgd")}

    a = _png_shape(figures.draw_saliency(sal(1, 2), str(tmp_path / "a.png")))
    b = _png_shape(figures.draw_saliency(sal(3, 2), str(tmp_path / "b.png")))
    c = _png_shape(figures.draw_saliency(sal(1, 6), str(tmp_path / "c.png")))
    assert b[0] > a[0] + 100 and abs(b[1] - a[1]) < 30   # two more eps rows: taller, as wide
    assert c[1] > a[1] + 200                             # four more examples (image + map each): wider

    x = rng.uniform(size=(4, 8, 8, 1)).astype(np.float32)
    one = {"fgsm": (x, np.clip(x + 0.1, 0, 1), np.zeros(4, int), np.ones(4, int))}
    two = {**one, "pgd": (x, np.clip(x - 0.1, 0, 1), np.zeros(4, int), np.zeros(4, int))}
    p1 = _png_shape(figures.draw_examples(one, str(tmp_path / "e1.png"), np.zeros(4, int)))
    p2 = _png_shape(figures.draw_examples(two, str(tmp_path / "e2.png"), np.zeros(4, int)))
    assert p2[0] > p1[0] + 200  # the clean row once, then 2 rows per attack
    assert figures.draw_examples({}, str(tmp_path / "none.png")) is None


def test_training_figure_has_a_panel_per_metric_and_skips_bookkeeping(tmp_path):
    records = [{"phase": "pretrain", "phase_index": 0, "step": s, "global_step": s, "steps_per_sec": 9.0,
                "loss_net_loss": 2.0 / s} for s in (2, 4)]
    records += [{"phase": "atgan", "phase_index": 1, "step": s, "global_step": 4 + s, "steps_per_sec": 9.0,
                 "loss_d": 1.0 / s, "loss_g": 2.0 + s, "eps": 0.3, "acc_clean": 0.1 * s} for s in (2, 4, 6)]
    path = figures.draw_training(records, str(tmp_path / "t.png"))
    five = _png_shape(path)  # 5 metrics: 4 columns, 2 rows
    fewer = _png_shape(figures.draw_training([{k: v for k, v in r.items() if k != "acc_clean"} for r in records],
                                             str(tmp_path / "t4.png")))  # 4 metrics: 1 row
    assert five[0] > fewer[0] * 1.5 and abs(five[1] - fewer[1]) < 30
    assert figures.draw_training([{"phase": "x", "global_step": 1, "steps_per_sec": 3.0}], str(tmp_path / "n.png")) is None


def test_curves_figure_shows_accuracy_on_adversarial_only_when_present(tmp_path):
    pts = [{"eps": e, "robust_accuracy": 1 - e, "budget_violations": 0} for e in (0.0, 0.1, 0.2)]
    results = {"clean_accuracy": 1.0, "curves": {"pgd": {"attack": "pgd", "norm": "linf", "points": pts}}}
    assert figures.draw_curves(results, str(tmp_path / "a.png"))
    assert figures.draw_curves({"curves": {}}, str(tmp_path / "b.png")) is None


def test_save_and_load_round_trip(tmp_path):
    data = {"saliency": {"eps": np.asarray([0.1], np.float32), "attack": np.asarray("pgd")},
            "decision_plane": {"classes": np.arange(9).reshape(1, 3, 3)}}
    figures.save(str(tmp_path / "f.npz"), data)
    back = figures.load(str(tmp_path / "f.npz"))
    assert set(back) == set(data) and str(back["saliency"]["attack"]) == "pgd"
    np.testing.assert_array_equal(back["decision_plane"]["classes"], data["decision_plane"]["classes"])
    assert figures.load(str(tmp_path / "missing.npz")) == {}


def test_eps_labels_read_like_the_papers():
    assert figures._fmt_eps(8 / 255) == "8/255" and figures._fmt_eps(np.float32(2 / 255)) == "2/255"
    assert figures._fmt_eps(0.3) == "0.3" and figures._fmt_eps(0.1) == "0.1" and figures._fmt_eps(0.0) == "0"
    assert not math.isnan(float(figures._l2_reach("linf", 0.1, 100)))
    assert figures._l2_reach("linf", 0.1, 100) == pytest.approx(1.0)
