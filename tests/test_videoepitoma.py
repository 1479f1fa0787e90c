"""VideoEpitoma mechanisms on random tensors (fast), then the method on the built-in benchmark."""

import numpy as np
import pytest
import torch

from harness.decode_cost import clip_frames
from harness.toolkit.selection import uniform_timesteps
from methods.videoepitoma import VideoEpitomaNet, gate_values, keep_one_open, l0_penalty, top_t_mask, train_videoepitoma

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _batch(n=6, length=10, light_dim=12, heavy_dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    mask = torch.arange(length)[None] < lengths[:, None]
    return torch.randn(n, length, light_dim, generator=g), torch.randn(n, length, heavy_dim, generator=g), mask


def test_gates_are_binary_at_test_and_gated_sigmoid_in_training():
    alpha = torch.linspace(-4, 4, 101, requires_grad=True)
    test = gate_values(alpha, training=False)
    assert set(test.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(test, (alpha > 0).float())
    torch.manual_seed(0)
    train = gate_values(alpha, training=True)
    opened = train > 0
    assert opened.any() and (~opened).any()
    assert (train[opened] >= 0.5).all() and (train[opened] <= 1).all()  # sigma kept above 0.5, zero below
    train.sum().backward()
    assert (alpha.grad[opened] > 0).all()  # differentiable where open
    assert (alpha.grad[~opened] == 0).all()


def test_l0_penalty_is_the_expected_open_fraction_and_reaches_every_gate():
    alpha = torch.tensor([[0.0, 2.0, -2.0, 9.0]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False]])
    penalty = l0_penalty(alpha, mask)
    expected = torch.sigmoid(alpha[0, :3].detach()).mean()
    assert torch.allclose(penalty, expected)
    penalty.backward()
    assert (alpha.grad[0, :3] > 0).all() and alpha.grad[0, 3] == 0  # padding has no say


def test_network_trains_end_to_end_through_the_gates():
    light, heavy, mask = _batch()
    net = VideoEpitomaNet(12, 16, 5, concepts=8, hidden=16)
    logits, gates, alpha = net(light, heavy, mask)
    assert ((gates == 0) | (gates >= 0.5)).all() and (gates[~mask] == 0).all()
    logits.logsumexp(1).sum().backward()
    for name in ("concept_kernels", "mlp.0.weight", "context.query.weight"):
        grad = dict(net.selector.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    net.eval()
    _, gates, alpha = net(light, heavy, mask)
    assert set(gates.unique().tolist()) <= {0.0, 1.0}
    assert ((gates > 0) & mask).any(1).all()  # every video keeps at least one timestep


def test_context_layer_makes_a_gate_depend_on_the_other_timesteps():
    light, heavy, mask = _batch(n=1, length=8)
    mask[:] = True
    changed = light.clone()
    changed[0, 5] = torch.randn(12) * 3
    for context, depends in ((True, True), (False, False)):
        torch.manual_seed(0)
        net = VideoEpitomaNet(12, 16, 5, concepts=8, hidden=16, context=context).eval()
        a, b = net.selector(light, mask), net.selector(changed, mask)
        assert torch.allclose(a[0, :5], b[0, :5]) != depends


def test_padding_does_not_change_the_selection():
    light, heavy, mask = _batch(n=1, length=6)
    mask[:] = True
    net = VideoEpitomaNet(12, 16, 5, concepts=8, hidden=16).eval()
    pad = lambda x: torch.cat([x, torch.randn(1, 4, x.shape[-1])], 1)  # noqa: E731
    padded_mask = torch.cat([mask, torch.zeros(1, 4, dtype=torch.bool)], 1)
    logits, gates, alpha = net(light, heavy, mask)
    logits2, gates2, alpha2 = net(pad(light), pad(heavy), padded_mask)
    assert torch.allclose(alpha, alpha2[:, :6], atol=1e-6) and torch.equal(gates, gates2[:, :6])
    assert torch.allclose(logits, logits2, atol=1e-5)


def test_top_t_takes_the_highest_gates_and_caps_at_the_length():
    alpha = torch.tensor([[0.1, 3.0, -1.0, 2.0, 9.0], [5.0, 1.0, 4.0, 0.0, 0.0]])
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    keep = top_t_mask(alpha, mask, 2)
    assert keep[0].nonzero()[:, 0].tolist() == [1, 4] and keep[1].nonzero()[:, 0].tolist() == [0, 2]
    keep = top_t_mask(alpha, mask, 10)
    assert torch.equal(keep, mask)


def test_a_video_with_all_gates_closed_keeps_its_best_timestep():
    alpha = torch.tensor([[-3.0, -1.0, -2.0], [1.0, -1.0, 2.0]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    gates = keep_one_open(gate_values(alpha, False), alpha, mask, training=False)
    assert gates.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


def test_sparsity_weight_pulls_the_number_of_selected_timesteps_down():
    torch.manual_seed(0)
    light, heavy, mask = _batch(n=32, length=12, seed=1)
    targets = torch.nn.functional.one_hot(torch.randint(0, 3, (32,)), 3).float()
    opened = []
    for sparsity in (0.0, 4.0):
        torch.manual_seed(0)
        net = VideoEpitomaNet(12, 16, 3, concepts=8, hidden=16)
        train_videoepitoma(
            net,
            light,
            heavy,
            mask,
            targets,
            sparsity=sparsity,
            multilabel=False,
            epochs=15,
            batch_size=16,
            lr=1e-2,
            seed=0,
            log=lambda _: None,
        )
        with torch.no_grad():
            _, gates, _ = net(light, heavy, mask)
        opened.append(float((gates > 0).sum()) / float(mask.sum()))
    assert opened[1] < opened[0] - 0.2, opened


def _toy(n=96, length=12, classes=3, seed=0):
    """Class evidence only at 2 informative timesteps per video, flagged in the cheap features."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    informative = torch.zeros(n, length, dtype=torch.bool)
    for i in range(n):
        informative[i, torch.randperm(length, generator=g)[:2]] = True
    light = torch.randn(n, length, 8, generator=g)
    light[..., 0] += 4 * informative
    heavy = torch.randn(n, length, 16, generator=g)
    onehot = torch.nn.functional.one_hot(labels, classes).float()
    heavy[..., :classes] += 4 * informative[..., None] * onehot[:, None]
    return light, heavy, torch.ones(n, length, dtype=torch.bool), onehot, informative


def test_selector_learns_to_pick_the_informative_timesteps():
    light, heavy, mask, targets, _ = _toy()
    test_light, test_heavy, test_mask, test_targets, informative = _toy(seed=1)
    torch.manual_seed(0)
    net = VideoEpitomaNet(8, 16, 3, concepts=8, hidden=32)
    train_videoepitoma(
        net,
        light,
        heavy,
        mask,
        targets,
        sparsity=0.3,
        multilabel=False,
        epochs=20,
        batch_size=16,
        lr=3e-3,
        seed=0,
        log=lambda _: None,
    )
    with torch.no_grad():
        logits, gates, _ = net(test_light, test_heavy, test_mask)
    chosen = gates > 0
    precision = float((chosen & informative).sum() / chosen.sum())  # random choice: 2/12
    accuracy = float((logits.argmax(1) == test_targets.argmax(1)).float().mean())
    assert float(chosen.float().mean()) < 0.3 and precision > 0.7 and accuracy > 0.8, (precision, accuracy)


# -- on the built-in benchmark (tiny): real decoded frames, real shared stages, real fvcore -------
def _tiny_method(tiny_root, name, **params):
    from pathlib import Path

    from conftest import tiny_trial

    # one store beside the session's benchmark: both selection test modules share its stages
    ctx, method = tiny_trial(
        tiny_root,
        name,
        params,
        store=Path(tiny_root).parent / "selection-stages",
        workdir=Path(tiny_root).parent,
        evaluation={"heavy_epochs": 1},
    )
    method.fit(ctx.dataset.split("train"))
    method.eval_mode()
    return ctx, method


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "end2end", "sparsity": 0.2},
        {"mode": "standalone", "top_t": 3, "context": False},
        {"mode": "end2end", "sparsity": 0.2, "candidates": 5},
    ],
)
def test_accounting_matches_a_brute_force_count_per_video(tiny_root, params):
    from harness.compute import verify_accounting

    ctx, method = _tiny_method(tiny_root, "videoepitoma", epochs=3, **params)
    test = ctx.dataset.split("test")[:10]
    pairs = verify_accounting(method, test)
    assert len(pairs) == 10
    for accounted, brute in pairs:
        assert brute > 0 and abs(accounted - brute) <= 0.01 * brute, pairs
    prediction = method.predict(test[0])
    steps, length = prediction.extras["timesteps"], prediction.extras["num_timesteps"]
    candidates = uniform_timesteps(length, params["candidates"]) if "candidates" in params else np.arange(length)
    assert prediction.extras["candidates"] == candidates.tolist() and set(steps) <= set(candidates.tolist())
    assert prediction.usage.total("light") == len(candidates)  # the LightNet sees the candidates only
    light_frames = clip_frames(candidates, method.table.clip_len, middle_only=True)
    assert set(prediction.decoded) == set(light_frames) | set(prediction.selected)
    assert prediction.usage.total("heavy") == len(steps) and (len(steps) == 3 or "top_t" not in params)
    assert prediction.selected == [f for t in steps for f in method.table.heavy_frames(0, [t])]
    assert np.isclose(prediction.scores.sum(), 1.0)
