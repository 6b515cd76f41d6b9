"""The regressor of the paper's Section 3.4: hand features H -> heatmaps HM -> theta, beta.

- :class:`HeatmapHead`: a stacked-hourglass head (one stack, depth 2) on H, the 21 joint
  heatmaps HM and their soft-argmax, the 2D joints in normalised uv. 1,787,946 parameters.
- :class:`Encoder`: 1x1 convs of HM (the heatmap *probabilities*, the spatial softmax the
  soft-argmax uses, as in the authors' code) and of the head's features, summed, then 4 stages of
  (2 residual bottlenecks + 2x2 max pooling): 256 x 2 x 2 -> a 1024 vector (the paper says
  2048; the authors' code gives 1024). 1,787,648 parameters.
- :class:`ManoHead`: MLP 1024 -> 1024 -> 512, then 16 rotations in Zhou et al.'s 6D
  representation (Gram-Schmidt to matrices) and the 10 shape coefficients beta.
  1,628,778 parameters.

Every conv has a bias; every activation is LeakyReLU(0.01), as in the authors' code.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..hand.rotations import matrix_to_axis_angle, rot6d_to_matrix
from .backbone import LEAKY_SLOPE

Tensor = torch.Tensor

NUM_JOINTS = 21
NUM_MANO_JOINTS = 16
NUM_BETAS = 10


class PreActBottleneck(nn.Module):
    """Pre-activation residual bottleneck (expansion 2): C -> C/2 -> C/2 -> C, plus the input.

    BN, LeakyReLU, 1x1 conv; BN, LeakyReLU, 3x3 conv; BN, LeakyReLU, 1x1 conv; + x.
    (B, C, h, w) -> (B, C, h, w). 214,528 parameters for C = 256.
    """

    def __init__(self, channels: int = 256):
        super().__init__()
        mid = channels // 2
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(self.act(self.bn1(x)))
        y = self.conv2(self.act(self.bn2(y)))
        y = self.conv3(self.act(self.bn3(y)))
        return y + x


class Hourglass(nn.Module):
    """Newell et al.'s hourglass with one bottleneck per residual, recursive to ``depth``.

    Level n (from ``depth`` down to 1): up = R_up(x); low = R_low1(maxpool(x));
    low = hourglass(n-1)(low) if n > 1 else R_inner(low); low = R_low3(low);
    out = up + nearest_upsample_x2(low). Three bottlenecks per level and one more at the
    innermost: 7 for depth 2. (B, C, h, w) -> (B, C, h, w), h and w divisible by 2^depth.
    """

    def __init__(self, channels: int = 256, depth: int = 2):
        super().__init__()
        self.depth = depth
        # levels[i] serves recursion level n = i + 1; levels[0] is the innermost
        self.levels = nn.ModuleList()
        for i in range(depth):
            n_blocks = 4 if i == 0 else 3
            self.levels.append(nn.ModuleList(PreActBottleneck(channels) for _ in range(n_blocks)))

    def _forward(self, n: int, x: Tensor) -> Tensor:
        up, low1, low3 = self.levels[n - 1][0], self.levels[n - 1][1], self.levels[n - 1][2]
        upper = up(x)
        low = low1(F.max_pool2d(x, 2, stride=2))
        low = self._forward(n - 1, low) if n > 1 else self.levels[0][3](low)
        low = low3(low)
        return upper + F.interpolate(low, size=upper.shape[-2:], mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(self.depth, x)


def soft_argmax(logits: Tensor, inverse_temperature: Tensor) -> Tuple[Tensor, Tensor]:
    """Spatial softmax and its expectation: heatmap logits -> probabilities and normalised uv.

    Args:
        logits: (B, J, h, w) heatmap scores.
        inverse_temperature: (J,), multiplies each joint's scores before the softmax.

    Returns:
        probs (B, J, h, w) summing to 1 per joint, and uv (B, J, 2) in [0, 1] with the pixel
        centres at ((i + 0.5) / w, (j + 0.5) / h): u along the width (x), v along the height (y).
    """
    b, j, h, w = logits.shape
    scaled = logits.flatten(2) * inverse_temperature.view(1, j, 1)
    probs = torch.softmax(scaled, dim=-1).view(b, j, h, w)
    xs = (torch.arange(w, device=logits.device, dtype=probs.dtype) + 0.5) / w
    ys = (torch.arange(h, device=logits.device, dtype=probs.dtype) + 0.5) / h
    u = (probs.sum(2) * xs).sum(-1)  # marginal over rows, expectation along x
    v = (probs.sum(3) * ys).sum(-1)
    return probs, torch.stack([u, v], dim=-1)


class HeatmapHead(nn.Module):
    """Hand features H (B, 256, h, w) -> heatmaps HM (B, 21, h, w), 2D joints (B, 21, 2).

    Hourglass (1 stack, depth 2) -> residual bottleneck -> [1x1 conv + BN + LeakyReLU] (the head
    features the encoder reads) -> 1x1 conv to 21 score maps. Soft-argmax with a learnable
    per-joint softmax temperature, initialised to 1 and stored as its inverse (the scores are
    multiplied by it, which avoids a division by a learned value). 1,787,946 parameters.
    """

    def __init__(self, channels: int = 256, num_joints: int = NUM_JOINTS, depth: int = 2):
        super().__init__()
        self.hourglass = Hourglass(channels, depth)
        self.residual = PreActBottleneck(channels)
        self.fc = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels),
                                nn.LeakyReLU(LEAKY_SLOPE))
        self.score = nn.Conv2d(channels, num_joints, 1)
        self.inverse_temperature = nn.Parameter(torch.ones(num_joints))

    def forward(self, h: Tensor) -> Dict[str, Tensor]:
        """Returns "heatmaps" (scores, B x 21 x h x w), "heatmap_probs" (softmax, same shape),
        "joints2d" (B, 21, 2) normalised uv and "head_features" (B, 256, h, w)."""
        feats = self.fc(self.residual(self.hourglass(h)))
        scores = self.score(feats)
        probs, uv = soft_argmax(scores, self.inverse_temperature)
        return {"heatmaps": scores, "heatmap_probs": probs, "joints2d": uv,
                "head_features": feats}


class Encoder(nn.Module):
    """Heatmaps HM (B, 21, h, w) and head features (B, 256, h, w) -> a 1024 vector.

    HM are the probabilities of :func:`soft_argmax` (each map sums to 1), not the raw scores:
    the authors' encoder reads those, and on the same weights the two inputs give different
    networks (the encoder's output differs by about a third).

    conv1x1(HM) + conv1x1(features), then 4 x [2 pre-activation bottlenecks, 2x2 max pool]:
    32 -> 16 -> 8 -> 4 -> 2 at 256 input. At 224 input the map goes 28 -> 14 -> 7 -> 3 -> 1;
    as the authors do, it is upsampled once before flattening, here with nearest-neighbour
    interpolation to 2 x 2 (from 1 x 1 that repeats the 256 values four times), so the vector
    is 1024 at both sizes. 1,787,648 parameters.
    """

    out_size = (2, 2)

    def __init__(self, channels: int = 256, num_joints: int = NUM_JOINTS, stages: int = 4):
        super().__init__()
        self.heatmap_proj = nn.Conv2d(num_joints, channels, 1)
        self.feature_proj = nn.Conv2d(channels, channels, 1)
        self.stages = nn.ModuleList(
            nn.Sequential(PreActBottleneck(channels), PreActBottleneck(channels))
            for _ in range(stages))
        self.out_features = channels * self.out_size[0] * self.out_size[1]

    def forward(self, heatmaps: Tensor, features: Tensor) -> Tensor:
        x = self.heatmap_proj(heatmaps) + self.feature_proj(features)
        for stage in self.stages:
            x = F.max_pool2d(stage(x), 2, stride=2)
        if tuple(x.shape[-2:]) != self.out_size:
            # 224 input: 1 x 1 here; the authors upsample once before flattening
            x = F.interpolate(x, size=self.out_size, mode="nearest")
        return x.flatten(1)


class ManoHead(nn.Module):
    """1024 vector -> MANO pose theta (16 joint rotations) and shape beta.

    Linear 1024->1024, LeakyReLU, Linear 1024->512, LeakyReLU; Linear 512->96 (16 rotations in
    the 6D representation, Gram-Schmidt to matrices, then axis-angle) and Linear 512->10 (beta).
    Each rotation's six outputs are its matrix's first column, then its second
    (:func:`~handssca.hand.rotations.rot6d_to_matrix`), the authors' layout.
    The pose is in MANO's ``flat_hand_mean=False`` convention (relative to the mean hand pose).
    1,628,778 parameters.
    """

    def __init__(self, in_features: int = 1024, hidden: Tuple[int, int] = (1024, 512)):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden[0]), nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(hidden[0], hidden[1]), nn.LeakyReLU(LEAKY_SLOPE))
        self.pose = nn.Linear(hidden[1], NUM_MANO_JOINTS * 6)
        self.shape = nn.Linear(hidden[1], NUM_BETAS)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """Returns "rotmats" (B, 16, 3, 3), "pose" theta (B, 48) axis-angle and "shape" beta
        (B, 10)."""
        f = self.mlp(x)
        rotmats = rot6d_to_matrix(self.pose(f).view(-1, NUM_MANO_JOINTS, 6))
        pose = matrix_to_axis_angle(rotmats).reshape(-1, NUM_MANO_JOINTS * 3)
        return {"rotmats": rotmats, "pose": pose, "shape": self.shape(f)}
