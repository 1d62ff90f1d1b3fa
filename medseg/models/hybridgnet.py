"""HybridGNet with two image-to-graph skip connections (Gaggion et al., IEEE TMI 2022; "2-IGSC", l1=6, l2=5).

A convolutional encoder maps a chest X-ray to a 64-d variational latent; a graph decoder of Chebyshev
spectral convolutions (torch-geometric ``ChebConv``, K=6) turns it into the landmark contour of every
organ of the card's template, so each output is a closed outline: no holes and no islands as long as the
contour does not cross itself (trained models practically never do; untrained ones do).

- Encoder: 6 pre-activation residual blocks (BN-ReLU-conv3 x2, 1x1 conv + BN shortcut when channels
  change), ``width`` x [1, 2, 4, 8, 16, 16] channels, 2x2 max-pool between blocks; flatten -> mu, logvar.
- Decoder: Linear(64 -> 16 N_coarse) on the half-resolution contour graph, two ChebConv; IGSC 1 predicts
  coarse node positions, samples block 6's feature map around them and concatenates [features, sample,
  position]; ChebConv, unpool to the full graph, ChebConv; IGSC 2 samples block 5; ChebConv; positions.
- The IGSC window is 3x3 feature pixels around each node averaged from bilinear samples
  (``grid_sample``; the original used torchvision's ``roi_align``, which we do not depend on).
- Unlike the original (``track_running_stats=False``), batch norm keeps running statistics, so eval-mode
  output for an image does not depend on the other images of its batch.

Positions are (x, y) normalised to [0, 1] by the input size with pixel edges at 0 and 1: pixel ``(x, y)``
of the input is ``((x + 0.5) / W, (y + 0.5) / H)``. In eval mode ``forward`` returns the (B, N, 2) output;
in train mode a :class:`HybridOutput` (output, pos1, pos2, mu, logvar), full resolution first.

Prediction on a whole image (any size, grey or colour) is :func:`predict_graph`; :func:`graph_to_mask` and
:func:`write_landmarks_json` give the mask and the landmark file (re-exported from ``_graph_predict``).
"""
from __future__ import annotations

from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.card import Intensity, ModelCard
from medseg.core.errors import MedsegError
from medseg.models._graph import GraphTemplate, template_from_card
from medseg.models._graph_predict import (  # noqa: F401 - the prediction API of graph models lives here too
    graph_to_mask,
    predict_graph,
    read_landmarks_json,
    write_landmarks_json,
)
from medseg.models._registry import register_model


class HybridOutput(NamedTuple):
    """Training-mode outputs: final positions (B, N, 2), IGSC positions (B, N/2, 2) and (B, N, 2), latent."""

    output: torch.Tensor
    pos1: torch.Tensor
    pos2: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class PreActBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3-BN-ReLU-conv3 plus a (1x1 conv + BN) shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=False), nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


class Encoder(nn.Module):
    """Six residual blocks with max-pooling between them; returns (mu, logvar, block-5 map, block-6 map)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], input_size: tuple[int, int], latent: int) -> None:
        super().__init__()
        if any(s % 32 for s in input_size):
            raise MedsegError(f"HybridGNet input size {input_size} must be a multiple of 32 (five 2x2 poolings)")
        cins = (in_channels,) + channels[:-1]
        self.blocks = nn.ModuleList(PreActBlock(a, b) for a, b in zip(cins, channels))
        flat = channels[-1] * (input_size[0] // 32) * (input_size[1] // 32)
        self.fc_mu = nn.Linear(flat, latent)
        self.fc_logvar = nn.Linear(flat, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        maps = []
        for k, block in enumerate(self.blocks):
            if k:
                x = F.max_pool2d(x, 2)
            x = block(x)
            maps.append(x)
        flat = x.flatten(1)
        return self.fc_mu(flat), self.fc_logvar(flat), maps[-2], maps[-1]


def sample_features(fmap: torch.Tensor, pos: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Mean of ``window`` x ``window`` bilinear samples of ``fmap`` (B, C, h, w), one feature pixel apart,
    centred on each normalised position of ``pos`` (B, N, 2); returns (B, N, C).

    Differentiable in both the feature map and the positions, so the encoder learns through the skip.
    """
    _, _, h, w = fmap.shape
    offsets = torch.arange(window, dtype=pos.dtype, device=pos.device) - (window - 1) / 2
    dy, dx = torch.meshgrid(offsets * 2 / h, offsets * 2 / w, indexing="ij")
    delta = torch.stack([dx.flatten(), dy.flatten()], -1)             # (window^2, 2) in grid units
    grid = (pos * 2 - 1)[:, :, None, :] + delta                        # (B, N, window^2, 2)
    samples = F.grid_sample(fmap, grid.to(fmap.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    return samples.mean(-1).transpose(1, 2)


def _node_norm(x: torch.Tensor) -> torch.Tensor:
    """The original's ``InstanceNorm1d`` on (B, N, F): each node's features normalised, no affine."""
    return F.layer_norm(x, x.shape[-1:])


class HybridGNet(nn.Module):
    """HybridGNet 2-IGSC for the organs of ``template``; see the module docstring.

    Args:
        template: organs and landmark counts, in output node order.
        input_size: (H, W) of the network input, multiples of 32.
        in_channels: image channels (1 for X-rays).
        width: channels of the first encoder block (8 in the paper).
        filters: decoder width f (32 in the paper): the schedule is [2, f, f, f, f/2, f/2, f/2].
        K: Chebyshev polynomial terms (6 in the paper).
        latent: size of the variational latent (64 in the paper).
    """

    encoder_prefixes = ("encoder.",)
    edges_fine: torch.Tensor
    edges_coarse: torch.Tensor
    unpool: torch.Tensor
    graph_nodes: torch.Tensor

    def __init__(self, template: GraphTemplate, input_size: tuple[int, int] = (1024, 1024), in_channels: int = 1,
                 width: int = 8, filters: int = 32, K: int = 6, latent: int = 64) -> None:
        super().__init__()
        from torch_geometric.nn import ChebConv

        self.template = template
        rows, cols = (int(s) for s in input_size)
        self.input_size = (rows, cols)
        coarse = template.coarse()
        channels = tuple(width * m for m in (1, 2, 4, 8, 16, 16))
        half = filters // 2
        self.encoder = Encoder(in_channels, channels, self.input_size, latent)
        self.dec_lin = nn.Linear(latent, half * coarse.num_nodes)
        self.conv_c1 = ChebConv(half, half, K)
        self.conv_c2 = ChebConv(half, half, K)
        self.pos1 = ChebConv(half, 2, 1, bias=False)
        self.conv_c3 = ChebConv(half + channels[5] + 2, filters, K)
        self.conv_f1 = ChebConv(filters, filters, K)
        self.pos2 = ChebConv(filters, 2, 1, bias=False)
        self.conv_f2 = ChebConv(filters + channels[4] + 2, filters, K)
        self.conv_out = ChebConv(filters, 2, 1, bias=False)
        self.register_buffer("edges_fine", template.edge_index(), persistent=False)
        self.register_buffer("edges_coarse", coarse.edge_index(), persistent=False)
        self.register_buffer("unpool", template.unpool_matrix(), persistent=False)
        # saved with the weights so a checkpoint names the template it was trained for
        self.register_buffer("graph_nodes", torch.tensor(template.counts, dtype=torch.long))
        self._init_decoder()

    def _init_decoder(self) -> None:
        """The original's N(0, 0.1) initialisation of the graph layers and of the latent-to-graph layer."""
        for module in self.modules():
            if type(module).__name__ == "ChebConv":
                for lin in cast(nn.ModuleList, module.lins):
                    nn.init.normal_(cast(torch.Tensor, lin.weight), 0.0, 0.1)
                bias = module.bias
                if isinstance(bias, torch.Tensor):
                    nn.init.normal_(bias, 0.0, 0.1)
        nn.init.normal_(self.dec_lin.weight, 0.0, 0.1)

    def decode(self, z: torch.Tensor, conv5: torch.Tensor, conv6: torch.Tensor):
        """Latent and encoder maps -> (output, pos1, pos2)."""
        ec, ef = self.edges_coarse, self.edges_fine
        h = F.relu(self.dec_lin(z)).view(z.shape[0], -1, self.conv_c1.in_channels)
        h = F.relu(_node_norm(self.conv_c1(h, ec)))
        h = F.relu(_node_norm(self.conv_c2(h, ec)))
        pos1 = self.pos1(h, ec)
        h = torch.cat([h, sample_features(conv6, pos1), pos1], dim=-1)
        h = F.relu(_node_norm(self.conv_c3(h, ec)))
        h = torch.matmul(self.unpool, h)
        h = F.relu(_node_norm(self.conv_f1(h, ef)))
        pos2 = self.pos2(h, ef)
        h = torch.cat([h, sample_features(conv5, pos2), pos2], dim=-1)
        h = F.relu(_node_norm(self.conv_f2(h, ef)))
        return self.conv_out(h, ef), pos1, pos2

    def forward(self, x: torch.Tensor) -> torch.Tensor | HybridOutput:
        if tuple(x.shape[-2:]) != self.input_size:
            raise MedsegError(f"HybridGNet expects {self.input_size} inputs, got {tuple(x.shape[-2:])}",
                              hint="resize (letterbox) the image first; predict_graph does it")
        mu, logvar, conv5, conv6 = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        out, pos1, pos2 = self.decode(z, conv5, conv6)
        if self.training:
            return HybridOutput(out, pos1, pos2, mu, logvar)
        return out

    def check_state_dict(self, state: dict, source: object = None) -> None:
        """Raise a clear error when a checkpoint was trained for another landmark template."""
        nodes = state.get("graph_nodes")
        if nodes is None:
            return
        theirs = [int(n) for n in torch.as_tensor(nodes).flatten()]
        if theirs != list(self.template.counts):
            ours = ", ".join(f"{name} {n}" for name, n in self.template.organs)
            raise MedsegError(
                f"the checkpoint was trained for a landmark graph of {theirs} nodes per organ "
                f"({sum(theirs)} in all), but the model's template is {ours} ({self.template.num_nodes} in all)",
                path=None if source is None else str(source),
                hint="use the card that came with these weights, or set graph= to the checkpoint's organs",
            )

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.check_state_dict(state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


LUNG_GRAPH = (("right_lung", 44), ("left_lung", 50))

CARD = ModelCard(
    name="hybridgnet",
    spatial_dims=2,
    in_channels=1,
    out_channels=3,
    labels=("background", "right_lung", "left_lung"),
    channel_names=("xray",),
    activation="graph",
    roi_size=(1024, 1024),
    intensity=Intensity("percentile", low=0.5, high=99.5),
    divisible_by=32,
    mirror_axes=(),            # a flip swaps the lungs
    orientation=None,
    modality="XR",
    graph=LUNG_GRAPH,
    description="HybridGNet 2-IGSC (Gaggion et al. 2022): chest X-ray -> closed landmark contours per organ "
                "(JSRT template: right lung 44, left lung 50, heart 26, clavicles 23+23; lungs enabled)",
)


@register_model(CARD)
def build_hybridgnet(card: ModelCard, *, width: int = 8, filters: int = 32, K: int = 6, latent: int = 64) -> nn.Module:
    """HybridGNet 2-IGSC for the card's template and ``roi_size`` input."""
    return HybridGNet(template_from_card(card), input_size=(card.roi_size[0], card.roi_size[1]), in_channels=card.in_channels,
                      width=width, filters=filters, K=K, latent=latent)
