"""HybridGNet: template graph, forward shapes, image-to-graph skips, eval-mode batch norm, prediction I/O."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.models import create_model, get_card
from medseg.models._graph import GraphTemplate
from medseg.models.hybridgnet import (
    graph_to_mask,
    predict_graph,
    read_landmarks_json,
    sample_features,
    write_landmarks_json,
)

LUNGS = GraphTemplate((("right_lung", 44), ("left_lung", 50)))


def small_model(**kw):
    torch.manual_seed(0)
    return create_model("hybridgnet", roi_size=(64, 64), width=2, **kw)


def test_card_declares_a_graph_of_the_enabled_organs():
    card = get_card("hybridgnet")
    assert card.activation == "graph"
    assert dict(card.graph) == {"right_lung": 44, "left_lung": 50}
    assert card.labels == ("background", "right_lung", "left_lung")
    assert card.mirror_axes == ()


def test_adjacency_is_one_cycle_per_organ():
    a = LUNGS.adjacency()
    assert torch.equal(a, a.T)
    assert torch.all(a.sum(1) == 2)
    assert a[:44, 44:].sum() == 0                                   # organs are not joined
    for organ, n in LUNGS.organs:
        block = a[LUNGS.slice(organ), LUNGS.slice(organ)]
        node, seen = 0, {0}
        for _ in range(n - 1):                                      # walking one way visits every node once
            node = next(j for j in torch.nonzero(block[node]).flatten().tolist() if j not in seen)
            seen.add(node)
        assert len(seen) == n and block[node, 0] == 1               # ... and comes back to the start
    eig = torch.linalg.eigvalsh(LUNGS.laplacian())
    assert eig.min() > -1e-5 and eig.max() < 2 + 1e-5
    assert int((eig.abs() < 1e-5).sum()) == 2                        # two connected components


def test_coarse_graph_pooling_and_unpooling():
    coarse = LUNGS.coarse()
    assert coarse.counts == (22, 25)
    u, p = LUNGS.unpool_matrix(), LUNGS.pool_matrix()
    assert u.shape == (94, 47) and p.shape == (47, 94)
    torch.testing.assert_close(u.sum(1), torch.ones(94))
    torch.testing.assert_close(p.sum(1), torch.ones(47))
    x = torch.randn(47, 3)
    torch.testing.assert_close((u @ x)[0:44:2], x[:22])              # even nodes copy their coarse node


def test_chebconv_uses_the_template_laplacian():
    from torch_geometric.nn import ChebConv

    torch.manual_seed(0)
    conv = ChebConv(3, 4, K=3)
    x = torch.randn(94, 3)
    lap = LUNGS.laplacian() - torch.eye(94)                         # scaled: 2L/lambda_max - I with lambda_max 2
    t = [x, lap @ x]
    t.append(2 * lap @ t[1] - t[0])
    dense = sum(lin(tk) for lin, tk in zip(conv.lins, t)) + conv.bias
    torch.testing.assert_close(conv(x, LUNGS.edge_index()), dense, atol=1e-5, rtol=1e-5)


def test_forward_shapes_train_and_eval():
    model = small_model()
    x = torch.rand(3, 1, 64, 64)
    out = model.train()(x)
    assert [tuple(t.shape) for t in out] == [(3, 94, 2), (3, 47, 2), (3, 94, 2), (3, 64), (3, 64)]
    assert model.eval()(x).shape == (3, 94, 2)
    with pytest.raises(MedsegError, match="expects"):
        model(torch.rand(1, 1, 96, 96))


def test_paper_size_parameter_count():
    # Gaggion et al. 2-IGSC with lungs + heart has 17,511,090 parameters; lungs only saves 16 x 13 x 65.
    model = create_model("hybridgnet")
    assert sum(p.numel() for p in model.parameters()) == 17_511_090 - 16 * 13 * 65


def test_igsc_samples_features_at_the_given_positions():
    h = w = 16
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    fmap = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h])[None].requires_grad_()   # each pixel holds its position
    pos = torch.tensor([[[0.30, 0.60], [0.55, 0.25]]], requires_grad=True)
    sampled = sample_features(fmap, pos)
    torch.testing.assert_close(sampled, pos.detach(), atol=1e-5, rtol=0)
    sampled.sum().backward()
    assert pos.grad.abs().sum() > 0 and fmap.grad.abs().sum() > 0


def test_gradients_reach_the_encoder_through_the_skips():
    model = small_model().eval()
    with torch.no_grad():                      # cut the latent path: z no longer depends on the image
        for fc in (model.encoder.fc_mu, model.encoder.fc_logvar):
            fc.weight.zero_()
    model(torch.rand(2, 1, 64, 64)).pow(2).sum().backward()
    first_conv = model.encoder.blocks[0].block[2].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_eval_output_does_not_depend_on_the_batch():
    model = small_model()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 1, 64, 64))    # move the running statistics away from their init
    model.eval()
    a, b = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(a)[0], model(torch.cat([a, b]))[0], atol=1e-5, rtol=1e-5)


def test_checkpoint_for_another_template_gives_a_clear_error():
    state = small_model().state_dict()
    other = small_model(graph=(("right_lung", 40), ("left_lung", 50)))
    with pytest.raises(MedsegError, match="trained for a landmark graph of \\[44, 50\\]"):
        other.load_state_dict(state)
    with pytest.raises(MedsegError, match="do not match the graph organs"):
        small_model(graph=(("right_lung", 44), ("left_lung", 50), ("heart", 26)))


def test_predict_graph_maps_points_back_to_the_original_image(monkeypatch, caplog):
    model = small_model()
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3)).astype(np.uint8)   # colour, smaller than 64
    expected = np.stack([np.linspace(3, 45, 94), np.linspace(35, 2, 94)], 1)
    # letterbox 40x50 -> 64: scale 1.28, 51x64, 6 rows of padding on top
    input_px = (expected + 0.5) * np.array([64 / 50, 51 / 40]) - 0.5 + np.array([0, 6])
    fixed = torch.from_numpy((input_px + 0.5) / 64).float()[None]
    monkeypatch.setattr(model, "forward", lambda x: fixed.expand(x.shape[0], -1, -1))
    monkeypatch.setattr(logging.getLogger("medseg"), "propagate", True)  # the CLI tests turn it off
    with caplog.at_level(logging.WARNING):
        graph = predict_graph(model, image)
    assert "smaller than" in caplog.text
    assert list(graph) == ["right_lung", "left_lung"]
    np.testing.assert_allclose(np.concatenate([graph["right_lung"], graph["left_lung"]]), expected, atol=1e-4)
    with pytest.raises(MedsegError, match="too small"):
        predict_graph(model, np.zeros((10, 12)))


def test_untrained_predict_mask_and_json_round_trip(tmp_path):
    model = small_model()
    image = np.random.default_rng(1).random((80, 70)).astype(np.float32)
    graph = predict_graph(model, image)
    assert graph["right_lung"].shape == (44, 2) and graph["left_lung"].shape == (50, 2)
    assert model.training                                            # the caller's mode is restored
    mask = graph_to_mask(graph, image.shape, ["right_lung", "left_lung"])
    assert mask.shape == (80, 70) and mask.dtype == np.uint8
    path = tmp_path / "case.landmarks.json"
    write_landmarks_json(path, graph, image_shape=image.shape, model="hybridgnet", source="case.png")
    loaded, shape = read_landmarks_json(path)
    assert shape == (80, 70) and list(loaded) == ["right_lung", "left_lung"]
    np.testing.assert_allclose(loaded["left_lung"], graph["left_lung"], atol=1e-3)
