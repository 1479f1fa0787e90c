"""LiteEval mechanisms on random tensors (fast), then the method on the built-in benchmark."""

import pytest
import torch

from harness.decode_cost import clip_frames
from methods.liteeval import LiteEvalNet, budget_loss, synchronise, temperature, train_liteeval

D_C, D_F = 6, 10


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _net(rnn="lstm", classes=4, seed=0):
    torch.manual_seed(seed)
    return LiteEvalNet(8, 12, classes, coarse_hidden=D_C, fine_hidden=D_F, coarse_embed=6, fine_embed=10, rnn=rnn)


def _batch(n=5, length=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    lengths[0] = length
    mask = torch.arange(length)[None] < lengths[:, None]
    return torch.randn(n, length, 8, generator=g), torch.randn(n, length, 12, generator=g), mask


def test_synchronisation_copies_exactly_the_first_coarse_dims():
    coarse, fine = torch.randn(3, D_C), torch.randn(3, D_F)
    synced = synchronise(coarse, fine)
    assert synced.shape == fine.shape
    assert torch.equal(synced[:, :D_C], coarse) and torch.equal(synced[:, D_C:], fine[:, D_C:])


def test_a_skipping_gate_leaves_the_coarse_state_in_the_fine_state():
    coarse, fine, mask = _batch()
    for rnn in ("lstm", "gru"):
        net = _net(rnn).eval()
        with torch.no_grad():
            net.gate.linear.bias.copy_(torch.tensor([100.0, -100.0]))  # always skip
        out = net(coarse, fine, mask)
        assert out["reads"].sum() == 0
        assert torch.equal(out["fine_hidden"][:, :D_C], out["coarse_hidden"])
        assert (out["fine_hidden"][:, D_C:] == 0).all()  # never read: the rest keeps its initial zeros
        if rnn == "lstm":
            assert torch.equal(out["fine_cell"][:, :D_C], out["coarse_cell"])


def test_gates_are_binary_at_test_and_trained_through_straight_through_gumbel():
    coarse, fine, mask = _batch()
    net = _net().train()
    out = net(coarse, fine, mask, tau=1.0)
    assert set(out["reads"].unique().tolist()) <= {0.0, 1.0} and (out["reads"][~mask] == 0).all()
    out["logits"].logsumexp(1).sum().backward()
    assert net.gate.linear.weight.grad.abs().sum() > 0  # classification gradient reaches the gate
    net.zero_grad()
    out = net(coarse, fine, mask, tau=1.0)
    budget_loss(out["reads"], mask.sum(1).float(), 0.0).backward()
    assert net.gate.linear.weight.grad.abs().sum() > 0
    net.eval()
    reads = net(coarse, fine, mask)["reads"]
    assert set(reads.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(reads, net(coarse, fine, mask)["reads"])  # argmax: deterministic


def test_padding_never_changes_scores_or_usage():
    coarse, fine, mask = _batch(n=4, length=7)
    net = _net().eval()
    ref = net(coarse, fine, mask)
    extra = 5
    pad = lambda x: torch.cat([x, 50 * torch.randn(x.shape[0], extra, x.shape[2])], 1)  # noqa: E731
    padded = net(pad(coarse), pad(fine), torch.cat([mask, torch.zeros(4, extra, dtype=torch.bool)], 1))
    assert torch.equal(ref["logits"], padded["logits"])
    assert torch.equal(ref["reads"], padded["reads"][:, :7]) and padded["reads"][:, 7:].sum() == 0
    # a shorter video inside the batch scores as it does alone, at its true length
    row, length = 1, int(mask[1].sum())
    alone = net(coarse[row : row + 1, :length], fine[row : row + 1, :length], mask[row : row + 1, :length])
    assert torch.allclose(alone["logits"], ref["logits"][row : row + 1], atol=1e-6)
    assert torch.equal(alone["reads"][0], ref["reads"][row, :length])


def test_online_setting_emits_after_the_kth_fine_read():
    coarse, fine, mask = _batch(n=1, length=9)
    net = _net().eval()
    with torch.no_grad():
        net.gate.linear.bias.copy_(torch.tensor([-100.0, 100.0]))  # always read
    out = net(coarse, fine, mask, online_k=3)
    assert out["reads"].sum() == 3 and out["processed"].sum() == 3 and out["processed"][0, :3].all()
    truncated = net(coarse[:, :3], fine[:, :3], mask[:, :3])
    assert torch.allclose(out["logits"], truncated["logits"], atol=1e-6)


def test_temperature_follows_the_global_step():
    assert temperature(0, 100, 5.0, 0.5) == 5.0
    assert abs(temperature(99, 100, 5.0, 0.5) - 0.5) < 1e-9
    values = [temperature(s, 100, 5.0, 0.5) for s in range(100)]
    assert all(a > b for a, b in zip(values, values[1:]))  # never resets (the official code's epoch reset)


class _RecordsTemperature(LiteEvalNet):
    """The real network; it also notes the temperature each training step ran at."""

    def forward(self, *args, tau=1.0, **kwargs):
        self.taus.append(tau)
        return super().forward(*args, tau=tau, **kwargs)


def test_training_anneals_the_temperature_over_the_global_step_across_epochs():
    # the official code's defect: the step counter driving the schedule restarts every epoch
    coarse, fine, mask = _batch(n=8, length=5)
    torch.manual_seed(0)
    net = _RecordsTemperature(8, 12, 3, coarse_hidden=D_C, fine_hidden=D_F, coarse_embed=6, fine_embed=10)
    net.taus = []
    targets = torch.nn.functional.one_hot(torch.arange(8) % 3, 3).float()
    train_liteeval(
        net,
        coarse,
        fine,
        mask,
        targets,
        gamma=0.5,
        lambda_=2.0,
        multilabel=False,
        epochs=3,
        batch_size=4,
        lr=1e-3,
        tau_start=5.0,
        tau_end=0.5,
        seed=0,
        log=lambda _: None,
    )
    assert len(net.taus) == 6  # 3 epochs of 2 batches
    assert all(a > b for a, b in zip(net.taus, net.taus[1:])), net.taus
    assert net.taus[0] == 5.0 and abs(net.taus[-1] - 0.5) < 1e-9


def test_budget_divides_each_videos_reads_by_its_true_length():
    reads = torch.tensor(
        [
            [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # 2 reads of 4 true steps, padded to 8
            [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        ]
    )  # 4 reads of 8
    assert torch.isclose(budget_loss(reads, torch.tensor([4.0, 8.0]), 0.25), torch.tensor(0.25**2))


def test_training_meets_the_budget_on_true_steps_of_padded_videos():
    # short videos padded to 4x their length: dividing reads by the padded length would let the
    # gate read every true step and still look like 25% of "the video"
    g = torch.Generator().manual_seed(5)
    n, true_length, padded = 24, 3, 12
    coarse, fine = torch.randn(n, padded, 8, generator=g), torch.randn(n, padded, 12, generator=g)
    mask = torch.arange(padded)[None] < torch.full((n, 1), true_length)
    mask[0] = True  # one full-length video, so the padding is real padding of a batch
    targets = torch.nn.functional.one_hot(torch.arange(n) % 3, 3).float()
    net = _net(classes=3)
    train_liteeval(
        net,
        coarse,
        fine,
        mask,
        targets,
        gamma=0.5,
        lambda_=5.0,
        multilabel=False,
        epochs=15,
        batch_size=12,
        lr=1e-2,
        tau_start=2.0,
        tau_end=0.5,
        seed=0,
        log=lambda _: None,
    )
    with torch.no_grad():
        reads = net(coarse, fine, mask)["reads"]
    fraction = float((reads[1:].sum(1) / true_length).mean())
    assert 0.15 < fraction < 0.85, fraction


def _reads_after_training(gamma, lambda_):
    coarse, fine, mask = _batch(n=24, length=8, seed=3)
    targets = torch.nn.functional.one_hot(torch.arange(24) % 3, 3).float()
    net = _net(classes=3)
    train_liteeval(
        net,
        coarse,
        fine,
        mask,
        targets,
        gamma=gamma,
        lambda_=lambda_,
        multilabel=False,
        epochs=12,
        batch_size=12,
        lr=1e-2,
        tau_start=2.0,
        tau_end=0.5,
        seed=0,
        log=lambda _: None,
    )
    with torch.no_grad():
        return float(net(coarse, fine, mask)["reads"].sum() / mask.sum())


def test_budget_term_pulls_fine_reads_toward_gamma():
    low, high = _reads_after_training(0.1, 5.0), _reads_after_training(0.9, 5.0)
    assert low < 0.3 and high > 0.7, (low, high)
    assert _reads_after_training(0.0, 0.0) > _reads_after_training(0.0, 5.0) + 0.2  # a higher weight, fewer reads


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


def test_gate_learns_to_read_the_informative_timesteps():
    coarse, fine, mask, targets, _ = _toy()
    test_coarse, test_fine, test_mask, test_targets, informative = _toy(seed=1)
    torch.manual_seed(0)
    net = LiteEvalNet(8, 16, 3, coarse_hidden=8, fine_hidden=32, coarse_embed=8, fine_embed=32)
    train_liteeval(
        net,
        coarse,
        fine,
        mask,
        targets,
        gamma=0.2,
        lambda_=2.0,
        multilabel=False,
        epochs=20,
        batch_size=16,
        lr=3e-3,
        tau_start=5.0,
        tau_end=0.5,
        seed=0,
        log=lambda _: None,
    )
    with torch.no_grad():
        out = net(test_coarse, test_fine, test_mask)
    read = out["reads"] > 0
    precision = float((read & informative).sum() / read.sum())  # random reads: 2/12
    accuracy = float((out["logits"].argmax(1) == test_targets.argmax(1)).float().mean())
    assert float(read.float().mean()) < 0.35 and precision > 0.6 and accuracy > 0.9, (precision, accuracy)


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


@pytest.mark.parametrize("params", [{"rnn": "lstm"}, {"rnn": "gru", "online_k": 2}])
def test_accounting_matches_a_brute_force_count_per_video(tiny_root, params):
    from harness.compute import verify_accounting

    ctx, method = _tiny_method(
        tiny_root, "liteeval", epochs=3, coarse_hidden=16, fine_hidden=32, coarse_embed=16, fine_embed=32, **params
    )
    test = ctx.dataset.split("test")[:10]
    pairs = verify_accounting(method, test)
    assert len(pairs) == 10
    for accounted, brute in pairs:
        assert brute > 0 and abs(accounted - brute) <= 0.01 * brute, pairs
    prediction = method.predict(test[0])
    usage, length = prediction.usage, prediction.extras["num_timesteps"]
    steps = length if not params.get("online_k") else prediction.extras["steps_processed"]
    assert usage.total("light") == usage.total("coarse_rnn") == usage.total("gate") == steps <= length
    assert usage.total("heavy") == usage.total("fine_rnn") == len(prediction.extras["timesteps"])
    # decoded: the coarse network's frame of every processed step, and the clips the fine network read
    coarse_frames = clip_frames(range(steps), method.table.clip_len, middle_only=True)
    assert set(prediction.decoded) == set(coarse_frames) | set(prediction.selected)
    with torch.no_grad():
        method.net.gate.linear.bias.copy_(torch.tensor([100.0, -100.0]))  # never read: only the coarse frames
    skipping = method.predict(test[0])
    assert skipping.selected == []
    assert skipping.decoded == clip_frames(range(length), method.table.clip_len, middle_only=True)
    if params.get("online_k"):
        assert usage.total("heavy") <= 2
