"""Model directories: safetensors weights (never pickle) and the card. Loading checks the weights
against the card's SHA-256, so a swapped or truncated file is refused, not run."""

from __future__ import annotations

from pathlib import Path

import torch

from mrm_edge.card import WEIGHTS_FILE, ModelCard, ModelCardError, verify_weights
from mrm_edge.errors import first_line
from mrm_edge.fileio import sha256_file
from mrm_edge.model import InferenceModel, MRMNet, MRMNetConfig


def save_model_dir(directory: Path, net: MRMNet, card: ModelCard) -> Path:
    """Write ``model.safetensors`` and ``card.json`` (with the weights' hash)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(weights), metadata={"format": "pt", "model": "MRM-Net"})
    card.weights = {"file": WEIGHTS_FILE, "sha256": sha256_file(weights)}
    card.architecture = net.cfg.to_dict()
    card.save(directory)
    return directory


def load_model_dir(directory: Path, device: str | torch.device = "cpu") -> tuple[MRMNet, ModelCard]:
    """The network (eval mode) and its card from a model directory."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    card = ModelCard.load(directory)
    # Exists, is safetensors (never a pickle), matches the card's SHA-256, is complete.
    weights = verify_weights(directory, card)
    try:
        cfg = MRMNetConfig.from_dict(card.architecture)
    except (TypeError, ValueError) as e:
        raise ModelCardError(
            f"{directory / 'card.json'}: field 'architecture' is invalid ({e})"
        ) from e
    net = MRMNet(cfg)
    try:
        state = load_file(str(weights), device=str(device))
        net.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as e:
        first = first_line(e, with_type=False)
        raise ModelCardError(f"{weights}: cannot load weights ({first})") from e
    return net.to(device).eval(), card


def inference_model(net: MRMNet, card: ModelCard) -> InferenceModel:
    """Raw-mV-in, probabilities-out module with the card's normalisation baked in."""
    norm = card.normalization
    return InferenceModel(
        net,
        torch.tensor(norm["mean"], dtype=torch.float32),
        torch.tensor(norm["std"], dtype=torch.float32),
        fusion=card.head_fusion,  # type: ignore[arg-type]
    ).eval()
