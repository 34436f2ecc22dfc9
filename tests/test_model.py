"""The UoMo network: tokeniser round trip, any grid size, adaLN-Zero start, context, masking semantics."""

import dataclasses
import numpy as np
import pytest
import torch

from forecasting.encoding import ContextSwitches, WindowTransform, encode
from forecasting.model import PRESETS, UoMoConfig, UoMoNet, pad_to_patch, patchify, preset, unpatchify


def _inputs(B=2, T=64, H=4, W=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, T, H, W, dtype=torch.bool)
    mask[:, 48:] = True
    return dict(
        noisy=torch.randn(B, T, H, W, generator=g),
        observed=torch.randn(B, T, H, W, generator=g),
        mask=mask,
        k=torch.randint(0, 100, (B,), generator=g),
        time_of_day=torch.rand(B, T, generator=g),
        day_of_week=torch.randint(0, 7, (B, T), generator=g),
    )


def test_patchify_round_trip():
    x = torch.randn(2, 3, 8, 6, 4)
    tokens = patchify(x, (4, 2, 2))
    assert tokens.shape == (2, 2 * 3 * 2, 3 * 16)
    assert torch.equal(unpatchify(tokens, (4, 2, 2), (8, 6, 4)), x)


def test_pad_to_patch_pads_only_what_is_needed():
    x = torch.ones(1, 1, 63, 5, 4)
    y = pad_to_patch(x, (4, 2, 2))
    assert y.shape == (1, 1, 64, 6, 4)
    assert y[..., 63, :, :].abs().sum() == 0 and y[..., :, 5, :].abs().sum() == 0


@pytest.mark.parametrize("grid", [(4, 4), (5, 7), (8, 8)])
def test_forward_shapes_any_grid(grid):
    net = UoMoNet(preset("tiny"))
    out = net(**_inputs(H=grid[0], W=grid[1]))
    assert out.shape == (2, 64, *grid)
    assert torch.isfinite(out).all()


def test_adaln_zero_initial_output_is_zero():
    """adaLN-Zero: a fresh network predicts exactly 0 everywhere (identity blocks, zero head)."""
    net = UoMoNet(preset("tiny"))
    assert torch.count_nonzero(net(**_inputs())) == 0


def _trained_like(net):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_observed_values_at_hidden_entries_are_ignored():
    """Whatever sits in `observed` at hidden entries, or in `noisy` at observed ones, cannot matter."""
    net = _trained_like(UoMoNet(preset("tiny"))).eval()
    a = _inputs()
    b = {k: v.clone() for k, v in a.items()}
    b["observed"][a["mask"]] = 123.0
    b["noisy"][~a["mask"]] = -55.0
    assert torch.allclose(net(**a), net(**b))


@pytest.mark.parametrize("user_tokens", [False, True])
def test_hidden_user_counts_cannot_change_the_forecast(user_tokens):
    """No peeking: users at entries marked unknown must not influence the output (condition and token paths)."""
    net = _trained_like(UoMoNet(dataclasses.replace(preset("tiny"), user_tokens=user_tokens))).eval()
    a = _inputs()
    users = torch.rand(2, 64, 4, 4)
    known = ~a["mask"]
    out1 = net(**a, users=users, users_known=known)
    users2 = users.clone()
    users2[a["mask"]] = 99.0
    out2 = net(**a, users=users2, users_known=known)
    assert torch.allclose(out1, out2)
    users3 = users.clone()
    users3[known] += 1.0
    assert not torch.allclose(out1, net(**a, users=users3, users_known=known))


def test_poi_of_any_width_and_padded_categories_are_neutral():
    net = _trained_like(UoMoNet(preset("tiny"))).eval()
    a = _inputs()
    poi = torch.rand(2, 21, 4, 4) * 10
    out21 = net(**a, poi=poi)
    padded = torch.cat([poi, torch.full((2, 2, 4, 4), 7.0)], 1)
    valid = torch.zeros(2, 23, dtype=torch.bool)
    valid[:, :21] = True
    assert torch.allclose(out21, net(**a, poi=padded, poi_valid=valid), atol=1e-6)
    out23 = net(**a, poi=torch.rand(2, 23, 4, 4))
    assert out23.shape == out21.shape


def test_padding_cells_do_not_leak():
    """Values in cells flagged invalid are never read."""
    net = _trained_like(UoMoNet(preset("tiny"))).eval()
    a = _inputs()
    valid = torch.ones(2, 64, 4, 4, dtype=torch.bool)
    valid[:, :, 3, :] = False
    out1 = net(**a, valid=valid)
    a2 = {k: v.clone() for k, v in a.items()}
    a2["observed"][:, :, 3, :] = 50.0
    out2 = net(**a2, valid=valid)
    assert torch.allclose(out1[:, :, :3], out2[:, :, :3], atol=1e-6)


def tokens_per_window(config, shape=(64, 4, 4)) -> int:
    return patchify(pad_to_patch(torch.zeros(1, 1, *shape), config.patch), config.patch).shape[1]


def test_presets_registry_and_sizes():
    assert {"cpu", "cpu-fine", "paper-5m", "paper-35m", "paper-200m"} <= set(PRESETS)
    n = sum(p.numel() for p in UoMoNet(preset("cpu")).parameters())
    assert 2e5 < n < 3e6
    # cpu-fine: the cpu network with half the steps per token, so twice the tokens of a 64 x 4 x 4 window
    assert preset("cpu-fine").patch == (4, 2, 2)
    assert tokens_per_window(preset("cpu-fine")) == 2 * tokens_per_window(preset("cpu")) == 64
    # the size lever: the cpu-fine tokens, 1.5x the depth or 1.5x the width (head size kept at 32)
    sizes = {name: sum(p.numel() for p in UoMoNet(preset(name)).parameters()) for name in ("cpu-fine", "cpu-deep", "cpu-wide")}
    assert sizes["cpu-fine"] < sizes["cpu-deep"] < sizes["cpu-wide"] < 2.5 * sizes["cpu-fine"]
    for name in ("cpu-deep", "cpu-wide"):
        assert tokens_per_window(preset(name)) == 64 and preset(name).hidden // preset(name).heads == 32
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("huge")
    cfg = preset("paper-5m")
    assert UoMoConfig.from_dict(cfg.to_dict()) == cfg


def test_backbone_parameters_are_attention_and_mlp_only():
    net = UoMoNet(preset("tiny"))
    backbone = {id(p) for p in net.backbone_parameters()}
    for name, p in net.named_parameters():
        is_backbone = ".attn." in name or ".mlp." in name
        assert (id(p) in backbone) == (is_backbone and name.startswith("blocks.")), name


def test_freezing_all_but_the_context_path_leaves_only_users_and_poi_trainable():
    from forecasting.train import _network
    from forecasting.train_config import TrainConfig

    net, _ = _network(TrainConfig(preset="tiny", freeze="context"), torch.device("cpu"))
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.split(".")[0] in ("user_embed", "poi_encoder", "poi_embed") for n in trainable)
    assert {id(p) for p in net.context_parameters()} == {id(p) for p in net.parameters() if p.requires_grad}


def test_user_token_path_added_to_a_checkpoint_starts_switched_off(tmp_path):
    """Fine-tuning with --user-tokens from a checkpoint without the path: the same network and weights plus a
    zero-initialised user token embedding, so the forecast is unchanged until fine-tuning teaches it."""
    from forecasting.checkpoint import save_checkpoint
    from forecasting.train import _network
    from forecasting.train_config import TrainConfig

    old = _trained_like(UoMoNet(preset("tiny"))).eval()
    path = tmp_path / "pre.pt"
    save_checkpoint(path, {"ema": old.state_dict()}, {"model": old.config.to_dict(), "train": {"preset": "tiny"}})
    net, cfg = _network(TrainConfig(preset="tiny", init_from=str(path), context=["users"], user_tokens=True,
                                    freeze="context"), torch.device("cpu"))
    assert cfg.user_tokens and net.user_token_embed is not None
    assert net.user_token_embed.weight.requires_grad  # part of the context path
    a, users = _inputs(), torch.rand(2, 64, 4, 4)
    known = torch.ones_like(a["mask"])
    with torch.no_grad():
        assert torch.allclose(old(**a, users=users, users_known=known), net.eval()(**a, users=users, users_known=known))
    with pytest.raises(ValueError, match="--context users"):
        TrainConfig(preset="tiny", user_tokens=True).validate()


def test_window_transform_inverts_exactly_and_uses_only_observed():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 64, 4, 4, generator=g) * torch.tensor([1e-3, 1e-1, 1.0]).view(3, 1, 1, 1)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 48:] = True
    tr = WindowTransform.from_observed(x, ~mask)
    assert torch.allclose(tr.from_model(tr.to_model(x)), x, rtol=1e-4, atol=1e-8)
    expected = x[:, :48].mean(1)  # per-cell observed mean (all cells observed here)
    assert torch.allclose(tr.scale[:, 0], expected, rtol=1e-5)
    window = x[:, :48].mean((1, 2, 3))
    assert torch.allclose(tr.relative, torch.log(expected / window[:, None, None]), atol=1e-5)
    x2 = x.clone()
    x2[mask] = 1e6
    assert torch.allclose(WindowTransform.from_observed(x2, ~mask).scale, tr.scale)


def test_cells_without_history_take_the_window_level():
    x = torch.ones(1, 64, 2, 2)
    x[:, :, 0, 0] = 3.0
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, :, 1, 1] = True  # generation: cell (1, 1) has no observation
    x[:, :, 1, 1] = 1e3  # hidden values must not leak into any scale
    tr = WindowTransform.from_observed(x, ~mask)
    assert tr.scale[0, 0, 0, 0] == pytest.approx(3.0)
    assert tr.scale[0, 0, 1, 1] == pytest.approx(5.0 / 3.0)  # mean of observed cells 3, 1, 1
    assert tr.relative[0, 1, 1] == 0


def test_level_weight_follows_observed_cell_level_only():
    x = torch.ones(1, 64, 2, 2)
    x[:, :, 0, 0] = 3.0
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 48:] = True  # short-term: the future is hidden ...
    x[:, 48:, 0, 1] = 1e3  # ... and a spike there must not change any weight
    w = WindowTransform.from_observed(x, ~mask).level_weight()
    assert w.shape == (1, 1, 2, 2)
    assert w[0, 0, 0, 0] == pytest.approx(3.0 / 1.5)  # window's observed mean (3 + 1 + 1 + 1) / 4
    assert w[0, 0, 0, 1] == pytest.approx(1.0 / 1.5)
    mask[:, :, 1, 1] = True  # a cell with no history takes weight 1
    assert WindowTransform.from_observed(x, ~mask).level_weight()[0, 0, 1, 1] == pytest.approx(1.0)


def test_encode_hides_users_with_traffic():
    rng = np.random.default_rng(0)
    traffic = rng.random((2, 64, 4, 4)).astype(np.float32)
    users = rng.random((2, 64, 4, 4)).astype(np.float32)
    mask = np.zeros_like(traffic, dtype=bool)
    mask[:, 16:] = True
    tod = np.tile(np.arange(64) / 48 % 1, (2, 1))
    dow = np.zeros((2, 64), int)
    _, cond, _ = encode(traffic, mask, tod, dow, users=users, context=ContextSwitches(users=True, poi=False))
    assert torch.equal(cond["users_known"], ~torch.as_tensor(mask))
    assert (cond["users"][torch.as_tensor(mask)] == 0).all()
    _, cond_off, _ = encode(traffic, mask, tod, dow, users=users, context=ContextSwitches(users=False, poi=False))
    assert "users" not in cond_off
    # users declared futr: user counts of hidden steps are shown, unless the caller hid them (NaN)
    future = ContextSwitches(users=True, poi=False, users_exog="futr")
    _, cond_f, _ = encode(traffic, mask, tod, dow, users=users, context=future)
    assert cond_f["users_known"].all() and (cond_f["users"][torch.as_tensor(mask)] != 0).any()
    # the training path passes users_available: it must not undo the switch
    _, cond_a, _ = encode(traffic, mask, tod, dow, users=users, users_available=np.array([True, False]), context=future)
    assert cond_a["users_known"][0].all() and not cond_a["users_known"][1].any()
    hidden_users = np.where(mask, np.nan, users)
    _, cond_h, _ = encode(traffic, mask, tod, dow, users=hidden_users, context=future)
    assert torch.equal(cond_h["users_known"], ~torch.as_tensor(mask))


def test_encoded_users_keep_each_cells_level_relative_to_the_window():
    """A generated cell has no traffic history: its user count relative to the other cells' is what tells how
    busy it is, so the users' model-space values must differ between a quiet and a busy cell (one scale
    per window), and scaling every user count by one factor must change nothing."""
    users = np.ones((1, 64, 2, 2), np.float32)
    users[:, :, 0, 0] = 10.0  # a busy cell among quiet ones, constant over time
    traffic = users * 0.01
    mask = np.zeros_like(traffic, dtype=bool)
    mask[:, :, 0, 0] = True  # generation: the busy cell has no traffic history
    tod, dow = np.tile(np.arange(64) / 48 % 1, (1, 1)), np.zeros((1, 64), int)
    futr = ContextSwitches(users=True, poi=False, users_exog="futr")
    _, cond, _ = encode(traffic, mask, tod, dow, users=users, context=futr)
    u = cond["users"][0, 0]
    assert u[0, 0] > u[1, 1] + 0.5 and torch.allclose(u[0, 1], u[1, 1])
    _, scaled, _ = encode(traffic, mask, tod, dow, users=users * 7.0, context=futr)
    assert torch.allclose(scaled["users"], cond["users"], atol=1e-5)
    # traffic proportional to users: the hidden cell's traffic and users coincide in model space, each
    # scaled by its mean over the cells whose traffic is observed
    x0, full, _ = encode(traffic, mask, tod, dow, users=users, context=futr)
    assert torch.allclose(x0[0, :, 0, 0], full["users"][0, :, 0, 0], atol=1e-5)


def test_day_lag_copies_observed_value_one_day_back():
    from forecasting.encoding import day_lag

    values = torch.arange(10, dtype=torch.float32).view(1, 10, 1, 1).repeat(2, 1, 1, 1)
    known = torch.ones_like(values, dtype=torch.bool)
    known[:, 7:] = False  # hidden future
    lag, flag = day_lag(values, known, torch.tensor([4, 20]))
    assert torch.equal(lag[0, 4:, 0, 0], torch.tensor([0.0, 1, 2, 3, 4, 5]))
    assert flag[0, :4].sum() == 0 and flag[0, 4:, 0, 0].all()  # t-4 <= 5 is observed for t <= 9
    assert flag[1].sum() == 0  # a window shorter than a day has no lag
    known[:, 2] = False
    lag2, flag2 = day_lag(values, known, torch.tensor([4, 20]))
    assert not flag2[0, 6, 0, 0] and lag2[0, 6, 0, 0] == 0  # lag source hidden -> no information


def test_day_lag_takes_the_day_before_the_window_for_its_first_day():
    from forecasting.encoding import day_lag

    values = torch.arange(10, dtype=torch.float32).view(1, 10, 1, 1)
    known = torch.ones_like(values, dtype=torch.bool)
    before_values = -torch.arange(1.0, 11.0).view(1, 10, 1, 1)
    before_known = torch.zeros_like(known)
    before_known[:, :3] = True  # recorded one day before steps 0-2 only
    lag, flag = day_lag(values, known, torch.tensor([4]), (before_values, before_known))
    assert lag.flatten().tolist() == [-1.0, -2.0, -3.0, 0.0, 0, 1, 2, 3, 4, 5]
    assert flag.flatten().tolist() == [True, True, True, False] + [True] * 6
    # the day before never overrides the window itself (steps t >= d read the window even if given)
    before_known[:] = True
    lag, _ = day_lag(values, known, torch.tensor([4]), (before_values, before_known))
    assert lag[0, 4:, 0, 0].tolist() == [0.0, 1, 2, 3, 4, 5]


def test_history_switch_gates_the_day_before_and_unrecorded_cells_get_none():
    from dataclasses import replace

    from forecasting.data import hide_unrecorded
    from forecasting.encoding import ContextSwitches, encode

    T = 64
    rng = np.random.default_rng(0)
    traffic = rng.uniform(0.1, 0.9, size=(1, T, 2, 2)).astype(np.float32)
    mask = np.zeros(traffic.shape, bool)
    mask[:, 16:] = True  # long task
    mask[:, :, 0, 0] = True  # cell (0, 0) generated: no record
    before = rng.uniform(0.1, 0.9, size=traffic.shape).astype(np.float32)
    before[:, 48:] = np.nan
    tod, dow = np.arange(T)[None] / 48, np.zeros((1, T), int)
    on = ContextSwitches(users=False, poi=False, history=True)
    _, off_cond, _ = encode(traffic, mask, tod, dow, slots_per_day=48, context=replace(on, history=False), day_before=before)
    _, cond, transform = encode(traffic, mask, tod, dow, slots_per_day=48, context=on,
                                day_before=hide_unrecorded(before, mask))
    assert not off_cond["lag_known"][0, :48].any()  # switch off: only the window's own day
    assert cond["lag_known"][0, :48, 1, 1].all() and not cond["lag_known"][0, :, 0, 0].any()
    expect = transform.to_model(torch.from_numpy(before))[0, :48, 1, 1]
    assert torch.allclose(cond["lag"][0, :48, 1, 1], expect)  # on the window's own per-cell scale
    assert ContextSwitches.from_dict({"users": True, "poi": True}).history is False  # older checkpoints


def test_carry_forward_is_the_last_observation_before_each_step():
    from forecasting.encoding import carry_forward

    values = torch.arange(1.0, 7.0).view(1, 6, 1, 1)
    known = torch.tensor([True, True, False, True, False, False]).view(1, 6, 1, 1)
    carry, flag = carry_forward(values, known)
    assert flag.flatten().tolist() == [False, True, True, True, True, True]
    assert carry.flatten().tolist() == [0.0, 1.0, 2.0, 2.0, 4.0, 4.0]  # hidden steps 5, 6 see step 4's value


def _short_task_batch(seed: int):
    """(x0, cond, k, mask) of two random 64 x 4 x 4 windows under the short task's mask, diffusion step 0."""
    from forecasting.masks import batch_masks

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(2, 64, 4, 4)).astype(np.float32)
    mask = batch_masks("short", 2, (64, 4, 4))
    x0, cond, _ = encode(x, mask, np.zeros((2, 64)), np.zeros((2, 64)))
    return x0, cond, torch.zeros(2, dtype=torch.long), mask


def test_the_carry_channel_changes_the_network_only_when_configured():
    from dataclasses import replace

    x0, cond, k, _ = _short_task_batch(0)
    for carry in (False, True):
        torch.manual_seed(0)
        net = UoMoNet(replace(preset("tiny"), carry=carry)).eval()
        for p in net.parameters():  # adaLN-Zero starts at zero output: give every weight a value
            torch.nn.init.normal_(p, std=0.05)
        out = net(x0, **cond, k=k)
        moved = dict(cond, carry=cond["carry"] + 1.0)
        changed = not torch.allclose(out, net(x0, **moved, k=k))
        assert changed == carry


def test_the_carry_skip_starts_as_the_last_value_forecast_and_needs_the_carry_channel():
    from dataclasses import replace

    x0, cond, k, mask = _short_task_batch(1)
    net = UoMoNet(replace(preset("tiny"), carry=True, carry_skip=True)).eval()
    out = net(x0, **cond, k=k)  # adaLN-Zero: the correction starts at zero
    hidden = torch.as_tensor(mask)
    # every hidden step of the short task has an observation before it: the forecast is that last value
    last = cond["observed"][:, 47:48].expand_as(out)
    assert torch.equal(out[hidden], last[hidden])
    plain = UoMoNet(replace(preset("tiny"), carry=True)).eval()
    assert torch.count_nonzero(plain(x0, **cond, k=k)) == 0  # without the skip: zero (the cell's own level)
    with pytest.raises(ValueError, match="needs carry=True"):
        UoMoNet(replace(preset("tiny"), carry_skip=True))


def test_named_poi_categories_start_neutral_and_then_tell_categories_apart():
    """Category names (UoMoConfig.poi_names) add phi(u, r) + (G [u, r]) * e_k per element: zero-initialised, so
    ids change nothing at first; once the names are learned, swapping two categories' counts changes the
    forecast, which the anonymous set encoder cannot see (it is symmetric in the categories)."""
    names = ("homes", "offices")
    assert not UoMoNet(dataclasses.replace(preset("tiny"), poi_names=names)).poi_encoder.name_embed.weight.any()
    net = _trained_like(UoMoNet(dataclasses.replace(preset("tiny"), poi_names=names))).eval()
    torch.nn.init.zeros_(net.poi_encoder.name_embed.weight)  # as a new network or a checkpoint gains them
    a, g = _inputs(), torch.Generator().manual_seed(3)
    poi = torch.rand(2, 2, 4, 4, generator=g) * 10
    swapped = poi.flip(1)
    ids = torch.tensor([[1, 2], [1, 2]])
    with torch.no_grad():
        assert torch.allclose(net(**a, poi=poi), net(**a, poi=poi, poi_ids=ids), atol=1e-6)
        assert torch.allclose(net(**a, poi=poi), net(**a, poi=swapped), atol=1e-6)  # anonymous: symmetric
        net.poi_encoder.name_embed.weight.normal_(generator=g)
        assert torch.allclose(net(**a, poi=poi), net(**a, poi=swapped), atol=1e-6)  # still, without ids
        assert not torch.allclose(net(**a, poi=poi, poi_ids=ids), net(**a, poi=swapped, poi_ids=ids), atol=1e-4)
        unknown = torch.zeros_like(ids)  # names the network does not know share one embedding
        assert torch.allclose(net(**a, poi=poi, poi_ids=unknown), net(**a, poi=swapped, poi_ids=unknown), atol=1e-6)
    assert UoMoConfig.from_dict(net.config.to_dict()) == net.config
    assert UoMoConfig.from_dict({k: v for k, v in net.config.to_dict().items() if k != "poi_names"}).poi_names == ()


def test_poi_names_added_to_a_checkpoint_start_switched_off(tmp_path):
    """Fine-tuning with --poi-names from a checkpoint that knows no names: the same forecast until fine-tuning
    teaches the zero-initialised names; a checkpoint that knows other names is refused."""
    from forecasting.checkpoint import CheckpointError, save_checkpoint
    from forecasting.train import _network
    from forecasting.train_config import TrainConfig

    old = _trained_like(UoMoNet(preset("tiny"))).eval()
    path = tmp_path / "pre.pt"
    save_checkpoint(path, {"ema": old.state_dict()}, {"model": old.config.to_dict(), "train": {"preset": "tiny"}})
    run = TrainConfig(preset="tiny", init_from=str(path), context=["poi"], poi_names=True)
    net, cfg = _network(run, torch.device("cpu"), ("homes", "offices"))
    assert cfg.poi_names == ("homes", "offices") and net.poi_encoder.name_embed.weight.requires_grad
    a, poi = _inputs(), torch.rand(2, 2, 4, 4) * 5
    with torch.no_grad():
        assert torch.allclose(old(**a, poi=poi), net.eval()(**a, poi=poi, poi_ids=torch.tensor([[1, 2], [2, 1]])))
    named = tmp_path / "named.pt"
    save_checkpoint(named, {"ema": net.state_dict()}, {"model": cfg.to_dict(), "train": {"preset": "tiny"}})
    with pytest.raises(CheckpointError, match="same names"):
        _network(dataclasses.replace(run, init_from=str(named)), torch.device("cpu"), ("shops",))
    with pytest.raises(ValueError, match="--context poi"):
        TrainConfig(preset="tiny", poi_names=True).validate()
    with pytest.raises(ValueError, match="needs poi"):
        TrainConfig(preset="tiny", context=["residents"]).validate()


def test_static_layers_append_residents_as_a_named_category():
    from forecasting.encoding import category_ids, static_layers

    poi, residents = np.ones((3, 2, 4, 4)), np.full((3, 4, 4), 50.0)
    both = ContextSwitches(poi=True, residents=True)
    layers, valid, ids = static_layers(poi, ["shop", "office"], residents, both, known=("office", "residents"))
    assert layers.shape == (3, 3, 4, 4) and np.all(layers[:, 2] == 50) and valid.all()
    assert ids.shape == (3, 3) and ids[0].tolist() == [0, 1, 2]  # 'shop' is not a name the network knows
    # a city none of whose categories the network knows by name is shown no static layer
    layers, valid, ids = static_layers(poi, None, residents, ContextSwitches(poi=True), known=("office",))
    assert layers.shape == (3, 2, 4, 4) and ids.tolist() == [[0, 0]] * 3 and not valid.any()
    layers, valid, ids = static_layers(poi, None, None, both)  # a network that knows no names: all read, no ids
    assert valid.all() and ids is None
    assert static_layers(poi, None, residents, ContextSwitches(poi=False)) == (None, None, None)
    # a city with residents but no POI: the residents layer alone, named, for a network that reads residents
    layers, valid, ids = static_layers(None, None, residents, both, known=("office", "residents"))
    assert layers.shape == (3, 1, 4, 4) and np.all(layers == 50) and valid.all() and ids.tolist() == [[2]] * 3
    assert static_layers(None, None, residents, ContextSwitches(poi=True)) == (None, None, None)
    assert static_layers(None, None, None, both) == (None, None, None)
    with pytest.raises(ValueError, match="3 POI category names for 2"):
        static_layers(poi, ["a", "b", "c"], None, both)
    assert category_ids(["b", None, "z"], ("a", "b")).tolist() == [2, 0, 0]
