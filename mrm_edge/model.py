"""MRM-Net: the multi-resolution mutual-learning network, in one file.

Huang et al., "A Multi-Resolution Mutual Learning Network for Multi-Label ECG
Classification" (arXiv 2406.16928). Module names follow the paper's figures:

    X ─ MultiScaleConvModule ─┬─ Z1 (C × 2N) ─ AttentionFusionLayer ─ Z3 ─ ClassificationHead ─ out1
      (Fig. 2, Table I)       └─ Z2 (2C × N) ─ AttentionFusionLayer ─ Z4 ─ ClassificationHead ─ out2
                                              (Fig. 3)                      (Linear(LN(AvgPool)))

The feature complementary module (Fig. 4, the KL "mimicry" losses) is training
only and lives in :mod:`mrm_edge.losses`; nothing here depends on it, so the
inference graph (:meth:`MRMNet.predict_proba`) exports without it.

Where the paper leaves a detail open, the authors' public code (github
wxhdf/MRM) settles it; each such choice is marked "code:" below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HeadFusion = Literal["low", "high", "mean"]


@dataclass(frozen=True)
class MRMNetConfig:
    """The dimensions of one MRM-Net. ``width`` is the paper's C."""

    n_labels: int = 5
    n_leads: int = 12
    n_samples: int = 1000  # 10 s at 100 Hz
    width: int = 128  # C: Z1 has C channels, Z2 has 2C
    # Table I: the four ConvBlock1 of the shared stem.
    stem_channels: tuple[int, ...] = (32, 64, 128, 128)
    stem_kernels: tuple[int, ...] = (11, 7, 5, 3)
    # Multi-scale fusion block: parallel kernels whose outputs are averaged.
    fusion_kernels: tuple[int, ...] = (3, 13, 23, 33)
    fusion_dropout: float = 0.2
    n_base_blocks: int = 3  # BaseBlocks before the attention fusion (Fig. 3a)
    base_block_kernel: int = 3  # code: BasicBlock uses kernel 3
    attention_reduction: int = 8  # code: channel-attention MLP C -> C/8 -> C
    spatial_kernel: int = 3  # paper eq. (2): "Conv3x3" over [avg, max]
    layer_norm_eps: float = 1e-6  # code: LayerNorm(eps=1e-6)
    head_fusion: HeadFusion = "mean"

    def __post_init__(self) -> None:
        if len(self.stem_channels) != len(self.stem_kernels):
            raise ValueError("stem_channels and stem_kernels must have the same length")
        if self.head_fusion not in ("low", "high", "mean"):
            raise ValueError(f"head_fusion must be low, high or mean, got {self.head_fusion!r}")
        if self.width % self.attention_reduction:
            raise ValueError("width must be divisible by attention_reduction")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MRMNetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MRMNetConfig fields: {sorted(unknown)}")
        tuples = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
        return cls(**{**d, **tuples})


PRESETS: dict[str, MRMNetConfig] = {
    # The paper's choice: LR-D = 128, HR-D = 256.
    "paper": MRMNetConfig(width=128),
    # The paper's 64/128 row (and the authors' public width): ~half the compute.
    "small": MRMNetConfig(width=64),
    # The shipped edge model's shape (issue 24, docs/model.md#the-edge-model): the shared stem
    # is a fixed cost, so it narrows the stem as well as C. Chosen by measured accuracy per
    # cost against C = 64 with the stem halved (`--width 64 --stem 16,32,64,64`).
    "edge": MRMNetConfig(width=32, stem_channels=(16, 32, 32, 32)),
}


def preset(name: str, **overrides: object) -> MRMNetConfig:
    """A named configuration, e.g. ``preset("paper", n_labels=5)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# --------------------------------------------------------------------------- building blocks


class ConvBlock1(nn.Module):
    """Stem block: Conv1d → BN → ReLU → MaxPool1d(2, stride 1, padding 1) (+1 sample)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool1d(kernel_size=2, stride=1, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class ConvBlock2(nn.Module):
    """The fusion block's parallel path: Conv1d(k3, stride s) → BN → ReLU → MaxPool1d(2)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool1d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class MultiScaleFusionBlock(nn.Module):
    """Fig. 2's fusion block: mean of parallel multi-kernel convs, plus ConvBlock2.

    stride 1 gives the high-time-resolution branch (Z1), stride 2 the
    low-time-resolution, wide branch (Z2).
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, kernels: tuple[int, ...], dropout: float
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False) for k in kernels
        )
        self.bn = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.pool = nn.MaxPool1d(2)
        self.conv_block2 = ConvBlock2(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        # Averaging the kernels is a sum scaled by 1/k; summing first avoids
        # materialising a stacked [k, B, C, T] tensor.
        multi = sum(conv(x) for conv in self.convs) / len(self.convs)
        multi = self.pool(self.dropout(self.relu(self.bn(multi))))
        return multi + self.conv_block2(x)


class MultiScaleConvModule(nn.Module):
    """Shared stem (Table I) then the two fusion blocks: X → (Z1, Z2)."""

    def __init__(self, cfg: MRMNetConfig) -> None:
        super().__init__()
        chans = (cfg.n_leads, *cfg.stem_channels)
        self.stem = nn.Sequential(
            *(ConvBlock1(chans[i], chans[i + 1], k) for i, k in enumerate(cfg.stem_kernels))
        )
        c = chans[-1]
        self.fusion_low = MultiScaleFusionBlock(
            c, cfg.width, 1, cfg.fusion_kernels, cfg.fusion_dropout
        )
        self.fusion_high = MultiScaleFusionBlock(
            c, 2 * cfg.width, 2, cfg.fusion_kernels, cfg.fusion_dropout
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.stem(x)
        return self.fusion_low(s), self.fusion_high(s)


class BaseBlock(nn.Module):
    """Residual block: conv-BN-ReLU-conv-BN + shortcut, ReLU. A 1×1 conv+BN
    shortcut ("downsample") is used when the channel count changes."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
            if c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a [B, C, T] map (code: "channels_first").

    Computed as transpose → layer_norm → transpose so the exported graph holds one
    LayerNormalization node (opset 17+), which TensorRT and ONNX Runtime fuse and
    which the FP16 export can keep in FP32 as a unit.
    """

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.transpose(1, 2)


class ChannelAttention(nn.Module):
    """CA(Z) = σ(MLP(AvgPool_t Z) + MLP(MaxPool_t Z)), the MLP shared (CBAM)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv1d(channels, channels // reduction, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv1d(channels // reduction, channels, 1, bias=False),
        )

    def forward(self, z: Tensor) -> Tensor:
        avg = self.mlp(z.mean(dim=2, keepdim=True))
        mx = self.mlp(z.amax(dim=2, keepdim=True))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """SA(Z) = σ(Conv(Cat[mean_c Z, max_c Z])): one weight per time step."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm1d(1)  # code: the 2→1 conv is followed by BN

    def forward(self, z: Tensor) -> Tensor:
        pooled = torch.cat([z.mean(dim=1, keepdim=True), z.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(pooled)))


class AttentionFusion(nn.Module):
    """Fig. 3b: Concat[CA(Z)⊗Z, SA(Z)⊗Z] → LayerNorm → BaseBlock back to C channels."""

    def __init__(self, channels: int, cfg: MRMNetConfig) -> None:
        super().__init__()
        self.channel_attention = ChannelAttention(channels, cfg.attention_reduction)
        self.spatial_attention = SpatialAttention(cfg.spatial_kernel)
        self.norm = ChannelLayerNorm(2 * channels, cfg.layer_norm_eps)
        self.down = BaseBlock(2 * channels, channels, cfg.base_block_kernel)

    def forward(self, z: Tensor) -> Tensor:
        fused = torch.cat([self.channel_attention(z) * z, self.spatial_attention(z) * z], dim=1)
        return self.down(self.norm(fused))


class AttentionFusionLayer(nn.Module):
    """Fig. 3a: three BaseBlocks then Attention Fusion. Z1 → Z3, Z2 → Z4."""

    def __init__(self, channels: int, cfg: MRMNetConfig) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(
                BaseBlock(channels, channels, cfg.base_block_kernel)
                for _ in range(cfg.n_base_blocks)
            )
        )
        self.fusion = AttentionFusion(channels, cfg)

    def forward(self, z: Tensor) -> Tensor:
        return self.fusion(self.blocks(z))


class ClassificationHead(nn.Module):
    """out = Linear(LayerNorm(GlobalAvgPool(Z)))."""

    def __init__(self, channels: int, n_labels: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)
        self.fc = nn.Linear(channels, n_labels)

    def forward(self, z: Tensor) -> Tensor:
        return self.fc(self.norm(z.mean(dim=2)))


# --------------------------------------------------------------------------- the network


class MRMOutputs(NamedTuple):
    """Everything the training loss needs (paper eq. 7)."""

    z1: Tensor  # [B, C, 2N]   low-width, high-time-resolution features
    z2: Tensor  # [B, 2C, N]   high-width, low-time-resolution features
    z3: Tensor  # [B, C, 2N]   Z1 after its attention fusion layer
    z4: Tensor  # [B, 2C, N]   Z2 after its attention fusion layer
    out1: Tensor  # [B, labels] logits of the low-resolution-width head
    out2: Tensor  # [B, labels] logits of the high-width head


class MRMNet(nn.Module):
    """MRM-Net. ``forward`` is the training graph; ``predict_proba`` the inference graph."""

    def __init__(self, cfg: MRMNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MRMNetConfig()
        c = self.cfg.width
        self.ms_module = MultiScaleConvModule(self.cfg)
        self.af_layer_low = AttentionFusionLayer(c, self.cfg)
        self.af_layer_high = AttentionFusionLayer(2 * c, self.cfg)
        self.fc_layer_low = ClassificationHead(c, self.cfg.n_labels, self.cfg.layer_norm_eps)
        self.fc_layer_high = ClassificationHead(2 * c, self.cfg.n_labels, self.cfg.layer_norm_eps)

    def forward(self, x: Tensor) -> MRMOutputs:
        z1, z2 = self.ms_module(x)
        z3 = self.af_layer_low(z1)
        z4 = self.af_layer_high(z2)
        return MRMOutputs(z1, z2, z3, z4, self.fc_layer_low(z3), self.fc_layer_high(z4))

    def head_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(out1, out2) without keeping the intermediate features alive."""
        z1, z2 = self.ms_module(x)
        return self.fc_layer_low(self.af_layer_low(z1)), self.fc_layer_high(self.af_layer_high(z2))

    def predict_proba(self, x: Tensor, fusion: HeadFusion | None = None) -> Tensor:
        """Label probabilities [B, labels]: the deployed output.

        The paper scores each head separately and does not say how to combine
        them; the default fuses by averaging the two sigmoids (recorded in the
        model card). Only the branch that is needed is computed.
        """
        fusion = fusion or self.cfg.head_fusion
        z1, z2 = self.ms_module(x)
        if fusion == "low":
            return torch.sigmoid(self.fc_layer_low(self.af_layer_low(z1)))
        if fusion == "high":
            return torch.sigmoid(self.fc_layer_high(self.af_layer_high(z2)))
        p1 = torch.sigmoid(self.fc_layer_low(self.af_layer_low(z1)))
        p2 = torch.sigmoid(self.fc_layer_high(self.af_layer_high(z2)))
        return (p1 + p2) / 2


class InferenceModel(nn.Module):
    """The export wrapper: raw mV in, probabilities out, standardisation inside.

    Baking the per-lead standardisation into the graph means every runtime
    applies exactly the preprocessing the model was trained with.
    """

    def __init__(
        self, net: MRMNet, mean: Tensor, std: Tensor, fusion: HeadFusion | None = None
    ) -> None:
        super().__init__()
        self.net = net
        self.fusion = fusion or net.cfg.head_fusion
        self.register_buffer("mean", mean.reshape(1, -1, 1).float())
        self.register_buffer("inv_std", (1.0 / std).reshape(1, -1, 1).float())

    def forward(self, ecg: Tensor) -> Tensor:
        return self.net.predict_proba((ecg - self.mean) * self.inv_std, self.fusion)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
