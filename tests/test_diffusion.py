"""Noise schedule, masked loss and mask-aware samplers, checked with oracle denoisers."""

import pytest
import torch

from forecasting.diffusion import (
    NoiseSchedule,
    ddim_timesteps,
    masked_mse,
    make_schedule,
    sample,
    training_loss,
)


def _cond(B=3, T=8, H=2, W=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(B, T, H, W, generator=g)
    mask = torch.zeros(B, T, H, W, dtype=torch.bool)
    mask[:, T // 2 :] = True
    return x0, {"observed": torch.where(mask, torch.zeros_like(x0), x0), "mask": mask}


def test_cosine_schedule_is_monotone_and_ends_near_pure_noise():
    s = NoiseSchedule.cosine(100)
    ab = s.alpha_bar
    assert s.steps == 100
    assert torch.all(ab[1:] < ab[:-1])
    assert ab[0] > 0.99 and ab[-1] < 1e-3
    with pytest.raises(ValueError):
        make_schedule("sigmoid", 10)


def test_add_noise_matches_closed_form():
    s = NoiseSchedule.linear(50)
    x0 = torch.ones(2, 4)
    eps = torch.full((2, 4), 2.0)
    k = torch.tensor([0, 49])
    x = s.add_noise(x0, eps, k)
    ab = s.alpha_bar[k].float()
    expected = ab.sqrt()[:, None] * 1.0 + (1 - ab).sqrt()[:, None] * 2.0
    assert torch.allclose(x, expected)


def test_masked_mse_ignores_observed_entries():
    pred = torch.zeros(2, 4)
    target = torch.tensor([[1.0, 1.0, 100.0, 100.0], [2.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    assert torch.allclose(masked_mse(pred, target, mask), torch.tensor([1.0, 4.0]))


def test_weighted_masked_mse_is_a_weighted_average_over_hidden_entries():
    pred = torch.zeros(1, 3)
    target = torch.tensor([[1.0, 2.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    weight = torch.tensor([[1.0, 3.0, 50.0]])  # the observed entry's weight must not count
    assert torch.allclose(masked_mse(pred, target, mask, weight), torch.tensor([(1.0 + 3.0 * 4.0) / 4.0]))
    assert torch.allclose(masked_mse(pred, target, mask, torch.ones(1, 3)), masked_mse(pred, target, mask))


@pytest.mark.parametrize("sampler,steps,eta", [("ddim", 10, 0.0), ("ddim", 5, 1.0), ("ddpm", None, 0.0)])
def test_oracle_denoiser_recovers_x0_and_observed_stay_exact(sampler, steps, eta):
    """With a denoiser that knows x0, every sampler must end exactly at x0 on hidden entries."""
    x0, cond = _cond()
    schedule = NoiseSchedule.cosine(30)
    oracle = lambda x, k, **c: x0  # noqa: E731
    out = sample(oracle, schedule, cond, tuple(x0.shape), sampler=sampler, steps=steps or 10, eta=eta,
                 generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, x0, atol=1e-5)
    assert torch.equal(out[~cond["mask"]], cond["observed"][~cond["mask"]])


def test_ddim_eta0_is_deterministic_given_noise_and_eta1_varies():
    x0, cond = _cond()
    schedule = NoiseSchedule.cosine(30)
    shrink = lambda x, k, **c: 0.5 * x  # noqa: E731  a denoiser whose output depends on its input
    a = sample(shrink, schedule, cond, tuple(x0.shape), steps=10, generator=torch.Generator().manual_seed(3))
    b = sample(shrink, schedule, cond, tuple(x0.shape), steps=10, generator=torch.Generator().manual_seed(3))
    c = sample(shrink, schedule, cond, tuple(x0.shape), steps=10, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = sample(shrink, schedule, cond, tuple(x0.shape), steps=10, eta=1.0, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(a, d)


def test_clamp_bounds_the_prediction():
    x0, cond = _cond()
    schedule = NoiseSchedule.cosine(20)
    wild = lambda x, k, **c: torch.full_like(x, 50.0)  # noqa: E731
    lo, hi = torch.tensor(-1.0), torch.tensor(2.0)
    out = sample(wild, schedule, cond, tuple(x0.shape), steps=5, clamp=(lo, hi))
    assert out[cond["mask"]].max() <= 2.0 + 1e-6


def test_ddim_timesteps_cover_first_and_last():
    ks = ddim_timesteps(100, 20)
    assert ks[0] == 99 and ks[-1] == 0 and len(ks) == 20
    with pytest.raises(ValueError):
        ddim_timesteps(10, 0)


def test_training_loss_perfect_denoiser_zero_and_contrastive_sign():
    x0, cond = _cond()
    schedule = NoiseSchedule.cosine(20)
    perfect = lambda x, k, **c: x0  # noqa: E731
    loss, stats = training_loss(perfect, schedule, x0, cond, generator=torch.Generator().manual_seed(0))
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    # a denoiser that is right only with its own context: negatives raise d-, which lowers the loss
    neg_cond = dict(cond, tag=1)
    picky = lambda x, k, tag=0, **c: x0 if tag == 0 else x0 + 0.5  # noqa: E731
    loss2, stats2 = training_loss(picky, schedule, x0, cond, generator=torch.Generator().manual_seed(0),
                                  negative_cond=neg_cond, contrastive_weight=0.1)
    assert stats2["mse_negative"] == pytest.approx(0.25)
    assert float(loss2) == pytest.approx(-0.1 * 0.25)
    # the cap bounds the reward for pushing negatives away
    far = lambda x, k, tag=0, **c: x0 if tag == 0 else x0 + 100.0  # noqa: E731
    loss3, _ = training_loss(far, schedule, x0, cond, negative_cond=neg_cond, contrastive_weight=0.1, contrastive_cap=1.0)
    assert float(loss3) == pytest.approx(-0.1)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_given_starting_noise_replaces_the_first_draw(sampler):
    x0, cond = _cond()
    schedule = NoiseSchedule.cosine(20)
    oracle = lambda x, k, **c: x0  # noqa: E731
    start = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    drawn = sample(oracle, schedule, cond, tuple(x0.shape), sampler=sampler, steps=5, eta=0.0,
                   generator=torch.Generator().manual_seed(5))
    given = sample(oracle, schedule, cond, tuple(x0.shape), sampler=sampler, steps=5, eta=0.0,
                   generator=torch.Generator().manual_seed(99), noise=start)
    if sampler == "ddim":  # deterministic after the start: the same sample
        assert torch.equal(drawn, given)
    with pytest.raises(ValueError, match="starting noise"):
        sample(oracle, schedule, cond, tuple(x0.shape), sampler=sampler, noise=start[:1])
