"""A deployed model directory as the runtime sees it: the card plus the verified artifacts.

    model_dir/
      card.json                       labels, thresholds, rate, window, leads (required)
      model.safetensors               weights (only the PyTorch reference backend reads them)
      model.onnx        + .json       FP32 ONNX and its sidecar
      model.fp16.onnx   + .json       mixed precision
      model.int8.onnx   + .json       INT8 Q/DQ for ONNX Runtime CPU (uint8 activations)
      model.int8-sym.onnx + .json     INT8 Q/DQ for TensorRT / OpenVINO (symmetric int8)
      model.<p>.<key>.engine + .json  TensorRT engines (names: mrm_edge.artifacts)

``DeployedModel.load`` reads the card and checks every artifact against its sidecar before
anything can run it: the file's SHA-256 must equal the sidecar's, and the sidecar's labels,
rate and window (when recorded) must equal the card's — an ONNX whose outputs are in another
label order would produce plausible, wrong findings. An artifact that fails is not an error
for the directory: it is listed in ``refused`` with the reason, and backend selection says
why it was not used (or refuses an explicit request for it). Whether an engine fits *this*
GPU and TensorRT is decided at selection time, where the GPU is probed.

The ONNX files are keyed by *variant* (``mrm_edge.artifacts``): both INT8 files have
precision ``"int8"`` and are told apart by variant, ``"int8"`` or ``"int8-sym"``.

Torch-free and cheap: hashing the files is the only work (a few MB for MRM-Net).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mrm_edge.runtime.backends.tensorrt.engine_file import EngineRefused, read_sidecar

from mrm_edge.artifacts import (
    ENGINE_GLOB,
    ONNX_FILES,
    onnx_io,
    parse_engine_filename,
    precision_of,
    sidecar_path,
    verify_artifact,
)
from mrm_edge.card import (
    WEIGHTS_FILE,
    ModelCard,
    ModelCardError,
    pickle_files,
    sha256_file,
    verify_weights,
)

__all__ = ["ONNX_FILES", "Artifact", "DeployedModel", "ModelLoadError"]

# ONNX_FILES (variant → file name) is re-exported from mrm_edge.artifacts for old imports.


class ModelLoadError(ValueError):
    """A model directory the runtime cannot use at all (one-line message)."""


@dataclass(frozen=True)
class Artifact:
    """One verified runnable file: an ONNX graph or a TensorRT engine."""

    path: Path
    kind: Literal["onnx", "engine"]
    precision: str
    sidecar: dict[str, Any]
    notes: tuple[str, ...] = ()
    """Facts worth saying but not disqualifying (e.g. the card changed after export)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def key(self) -> dict[str, Any]:
        """An engine's build key (GPU, TensorRT version, profile, ...); {} for ONNX."""
        key = self.sidecar.get("key")
        return key if isinstance(key, dict) else {}


@dataclass
class DeployedModel:
    """The card and the usable artifacts of one model directory (see the module docstring)."""

    directory: Path
    card: ModelCard
    onnx: dict[str, Artifact] = field(default_factory=dict)
    """Variant (``mrm_edge.artifacts``: fp32, fp16, int8, int8-sym) → verified ONNX artifact."""
    engines: list[Artifact] = field(default_factory=list)
    """Verified TensorRT engines (their fit to this GPU is checked at selection)."""
    refused: dict[str, str] = field(default_factory=dict)
    """File name → why it will not be used."""

    # ------------------------------------------------------------------ card shortcuts

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def labels(self) -> list[str]:
        return list(self.card.labels)

    @property
    def thresholds(self) -> dict[str, float]:
        return {lab: float(self.card.thresholds[lab]) for lab in self.card.labels}

    @property
    def sampling_rate(self) -> int:
        return int(self.card.sampling_rate)

    @property
    def window_samples(self) -> int:
        return int(self.card.window_samples)

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sampling_rate

    @property
    def leads(self) -> list[str]:
        return list(self.card.leads)

    @property
    def weights(self) -> Path | None:
        """The safetensors weights if present and verified (the PyTorch reference backend
        needs them); None when missing or refused (see ``refused``)."""
        path = self.directory / (self.card.weights.get("file") or WEIGHTS_FILE)
        return path if path.is_file() and path.name not in self.refused else None

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, model_dir: str | Path, *, verify: bool = True) -> DeployedModel:
        """Read ``model_dir``'s card and verify its artifacts.

        ``verify=False`` accepts ONNX files that have no sidecar (hand-exported models);
        a sidecar that is present is still checked. Raises ModelLoadError when the
        directory or its card is unusable, or when nothing in it can run.
        """
        directory = Path(model_dir)
        if not directory.is_dir():
            raise ModelLoadError(f"{directory}: no such model directory")
        try:
            card = ModelCard.load(directory)
        except ValueError as e:  # ModelCardError is a ValueError with a one-line message
            raise ModelLoadError(str(e)) from e
        model = cls(directory.resolve(), card)
        for variant, filename in ONNX_FILES.items():
            path = model.directory / filename
            # A sidecar without its file is reported (the export wrote both; one is lost).
            if path.exists() or sidecar_path(path).exists():
                model._add_onnx(path, variant, verify)
        for path in sorted(model.directory.glob(ENGINE_GLOB)):
            model._add_engine(path)
        model._check_weights()
        if not model.onnx and not model.engines and model.weights is None:
            detail = "; ".join(f"{k}: {v}" for k, v in model.refused.items())
            raise ModelLoadError(
                f"{directory}: nothing runnable (no verified model.onnx, engine or weights"
                + (f"; refused {detail})" if detail else "); run `mrm-edge export` first")
            )
        return model

    def _check_weights(self) -> None:
        """Refuse weights that are corrupt or pickle; name pickle files that will not load.

        Only the PyTorch backend reads the weights, so a bad weights file does not stop the
        ONNX or TensorRT backends: it is listed in ``refused`` with the reason instead.
        """
        path = self.directory / (self.card.weights.get("file") or WEIGHTS_FILE)
        if path.is_file():
            try:
                verify_weights(self.directory, self.card)
            except ModelCardError as e:
                self.refused[path.name] = str(e)
        for name in pickle_files(self.directory):
            self.refused[name] = (
                f"{self.directory / name}: a pickle checkpoint, never loaded "
                "(checkpoints are safetensors-only)"
            )

    def _check_io(self, path: Path, sidecar: dict[str, Any]) -> str | None:
        """Why the graph's input/output shapes contradict the card, or None.

        ``mrm-edge export`` records the shapes in the sidecar (which the SHA-256 binds to the
        file); without them the graph itself is read when the ``onnx`` package is present.
        An 8-lead graph fed 12 leads, or one with 4 outputs for 5 labels, must not run.
        """
        io: Any = sidecar if "inputs" in sidecar else None
        if io is None:
            try:
                io = onnx_io(path)
            except ImportError:  # edge install without onnx: the backend checks at activation
                return None
            except Exception as e:  # not a parseable ONNX: say so rather than run it
                return f"not a readable ONNX graph ({' '.join(str(e).split())[:120]})"
        ins, outs = io.get("inputs"), io.get("outputs")
        if not (isinstance(ins, list) and isinstance(outs, list) and len(ins) == len(outs) == 1):
            return "expected one input and one output tensor"
        card = self.card
        expect = (
            ("input", ins[0], [len(card.leads), card.window_samples], f"{len(card.leads)} leads"),
            ("output", outs[0], [len(card.labels)], f"{len(card.labels)} labels"),
        )
        for what, tensor, want, meaning in expect:
            shape = tensor.get("shape") if isinstance(tensor, dict) else None
            wanted = f"[batch, {', '.join(map(str, want))}]"
            if not isinstance(shape, list) or len(shape) != len(want) + 1:
                return f"{what} shape {shape!r}, expected {wanted}"
            # Only fixed dimensions can contradict the card (a named one is dynamic).
            if any(
                isinstance(d, int) and d > 0 and d != w
                for d, w in zip(shape[1:], want, strict=True)
            ):
                name = tensor.get("name", what)
                return f"{what} '{name}' has shape {shape}, the card needs {wanted} ({meaning})"
        return None

    def _check_against_card(self, sidecar: dict[str, Any]) -> str | None:
        """Why the sidecar's description contradicts the card, or None."""
        card = self.card
        for key, want in (
            ("labels", list(card.labels)),
            ("sampling_rate", card.sampling_rate),
            ("window_samples", card.window_samples),
        ):
            got = sidecar.get(key)
            if got is not None and got != want:
                return f"sidecar '{key}' is {got!r} but the card says {want!r}"
        return None

    def _card_notes(self, sidecar: dict[str, Any]) -> tuple[str, ...]:
        recorded = sidecar.get("source_card_sha256")
        if recorded and recorded != sha256_file(self.directory / "card.json"):
            # Thresholds are often re-tuned after export; labels/rate/window were checked.
            return ("card.json changed since export (labels, rate and window still match)",)
        return ()

    def _add_onnx(self, path: Path, variant: str, verify: bool) -> None:
        precision = precision_of(variant)
        try:
            sidecar = verify_artifact(path)
        except ValueError as e:
            if verify or sidecar_path(path).exists():
                self.refused[path.name] = str(e)
                return
            sidecar = {}
        problem = self._check_against_card(sidecar) or self._check_io(path, sidecar)
        if problem:
            self.refused[path.name] = f"{path}: {problem}"
            return
        declared = sidecar.get("precision")
        if declared is not None and declared != precision:
            self.refused[path.name] = (
                f"{path}: sidecar 'precision' is {declared!r}, the file name says {precision!r}"
            )
            return
        notes = self._card_notes(sidecar)
        if not sidecar:
            notes = (*notes, "no sidecar (accepted: verify=False)")
        self.onnx[variant] = Artifact(path, "onnx", precision, sidecar, notes)

    def _add_engine(self, path: Path) -> None:
        parsed = parse_engine_filename(path.name)
        if parsed is None:
            self.refused[path.name] = f"{path}: not an engine name model.<precision>.<key>.engine"
            return
        try:
            sidecar = read_sidecar(path)
        except EngineRefused as e:
            self.refused[path.name] = str(e)
            return
        if sha256_file(path) != sidecar["engine_sha256"]:
            self.refused[path.name] = (
                f"{path}: SHA-256 differs from its sidecar's (truncated or replaced)"
            )
            return
        precision = parsed[0]
        key = sidecar["key"]
        if key.get("precision") not in (None, precision):
            self.refused[path.name] = (
                f"{path}: sidecar key precision {key.get('precision')!r}, file name says "
                f"{precision!r}"
            )
            return
        # An engine built from an older ONNX of this directory is stale: refuse it rather
        # than run weights the card no longer describes.
        # The ONNX it was built from is named in the sidecar (INT8 engines are built from the
        # TensorRT-style INT8 file, not the ONNX Runtime one); older sidecars name none.
        source = (sidecar.get("build") or {}).get("onnx_file")
        onnx = next((a for a in self.onnx.values() if a.name == source), None)
        if onnx is None and source is None:
            onnx = self.onnx.get(precision)
        built_from = key.get("onnx_sha256")
        if onnx is not None and built_from and onnx.sidecar.get("sha256") not in (None, built_from):
            self.refused[path.name] = (
                f"{path}: built from another {onnx.name} (stale engine); rebuild it with "
                "`mrm-edge export --engine`"
            )
            return
        self.engines.append(Artifact(path, "engine", precision, sidecar))

    # ------------------------------------------------------------------ description

    def describe(self) -> str:
        """One line: name, task, labels, rate, window, and what is runnable."""
        runnable = [a.name for a in self.onnx.values()] + [a.name for a in self.engines]
        if self.weights is not None:
            runnable.append(self.weights.name)
        return (
            f"{self.name}: {len(self.labels)} labels ({', '.join(self.labels)}), "
            f"{self.window_s:g} s windows at {self.sampling_rate} Hz; "
            f"runnable: {', '.join(runnable) or 'nothing'}"
            + (f"; refused: {', '.join(self.refused)}" if self.refused else "")
        )
