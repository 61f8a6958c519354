"""The training loss of MRM-Net (paper eq. 4-7): BCE on both heads plus the feature
complementary module's mutual-learning ("mimicry") KL terms, the "KL heads": training only,
never in the exported graph (why no projection layer is needed: docs/model.md). Plus, for
``mrm-edge distill``, a teacher's soft labels on top of it (:class:`DistillationLoss`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from mrm_edge.model import MRMOutputs


def mutual_kl(a: Tensor, b: Tensor, temperature: float = 4.0) -> Tensor:
    """Symmetric KL of two tensors, each flattened per sample and softmax-normalised.

    L_m(A, B) = KL(p(A) || p(B)) + KL(p(B) || p(A)), with p = softmax(flat / T),
    T²-scaled and averaged over the batch as in the distillation literature
    (and the authors' code). Gradients flow into both sides: the branches
    learn from each other, neither is a fixed teacher.
    """
    if a.shape[0] != b.shape[0] or a[0].numel() != b[0].numel():
        raise ValueError(f"mutual_kl needs equal per-sample sizes, got {a.shape} and {b.shape}")
    log_pa = F.log_softmax(a.flatten(1) / temperature, dim=1)
    log_pb = F.log_softmax(b.flatten(1) / temperature, dim=1)
    # KL(p||q) = sum p (log p - log q); the symmetric sum simplifies to
    # sum (p_a - p_b)(log p_a - log p_b), which is exactly 0 for a == b.
    sym = ((log_pa.exp() - log_pb.exp()) * (log_pa - log_pb)).sum(dim=1)
    return sym.mean() * temperature**2


@dataclass(frozen=True)
class LossConfig:
    alpha: float = 0.01  # weight of L_m(Z1, Z2)
    beta: float = 0.01  # weight of L_m(Z3, Z4)
    gamma: float = 0.1  # weight of L_m(out1, out2)
    temperature: float = 4.0


class MutualLearningLoss(nn.Module):
    """L = BCE(out1, y) + BCE(out2, y) + α L_m(Z1,Z2) + β L_m(Z3,Z4) + γ L_m(out1,out2)."""

    def __init__(self, cfg: LossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LossConfig()

    def forward(self, out: MRMOutputs, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        c = self.cfg
        bce1 = F.binary_cross_entropy_with_logits(out.out1, y)
        bce2 = F.binary_cross_entropy_with_logits(out.out2, y)
        kl_z12 = mutual_kl(out.z1, out.z2, c.temperature)
        kl_z34 = mutual_kl(out.z3, out.z4, c.temperature)
        kl_out = mutual_kl(out.out1, out.out2, c.temperature)
        total = bce1 + bce2 + c.alpha * kl_z12 + c.beta * kl_z34 + c.gamma * kl_out
        parts = {
            "bce_low": bce1.item(),
            "bce_high": bce2.item(),
            "kl_z1_z2": kl_z12.item(),
            "kl_z3_z4": kl_z34.item(),
            "kl_out": kl_out.item(),
        }
        return total, parts


def soft_label_kl(student_logits: Tensor, teacher_probs: Tensor, temperature: float) -> Tensor:
    """Per-label binary KL(teacher || student) at temperature T, T²-scaled, mean over labels.

    Multi-label outputs are independent sigmoids, so each label is its own two-class
    distribution: ``teacher_probs`` are the teacher's already softened at T, the student's
    are sigmoid(logits / T). Exactly 0 when they agree (BCE minus the target's entropy).
    """
    cross = F.binary_cross_entropy_with_logits(student_logits / temperature, teacher_probs)
    entropy = F.binary_cross_entropy(teacher_probs, teacher_probs)  # 0·log 0 is taken as 0
    return (cross - entropy) * temperature**2


class DistillationLoss(nn.Module):
    """The paper's loss on the student plus α · (KL_T(teacher, out1) + KL_T(teacher, out2)):
    both student heads learn the teacher's deployed (fused) output, as both learn the labels."""

    def __init__(self, cfg: LossConfig | None, alpha: float, temperature: float) -> None:
        super().__init__()
        self.paper = MutualLearningLoss(cfg)
        self.alpha = alpha
        self.temperature = temperature

    def forward(
        self, out: MRMOutputs, y: Tensor, teacher_probs: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        total, parts = self.paper(out, y)
        t = self.temperature
        kd = soft_label_kl(out.out1, teacher_probs, t) + soft_label_kl(out.out2, teacher_probs, t)
        parts["kd"] = kd.item()
        return total + self.alpha * kd, parts
