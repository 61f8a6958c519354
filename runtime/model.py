"""A deployed model directory as the runtime sees it: the card plus the artifacts verified
before anything can run them; one that fails is listed in ``refused`` with the reason, not
an error for the directory. The files: docs/export.md; what an edited directory gets:
docs/threat-model.md (Model files). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrm_edge.runtime.backends.tensorrt.engine_file import (
    EngineRefused,
    read_engine_sidecar,
    verify_engine_file,
)

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
    CARD_FILE,
    TUNABLE_FIELDS,
    WEIGHTS_FILE,
    ModelCard,
    ModelCardError,
    card_changes,
    pickle_files,
    shown,
    verify_weights,
)
from mrm_edge.fileio import sha256_file

#: The command-line opt-in that lets re-tuned thresholds / alarm labels run (named in errors).
ACCEPT_TUNING_OPTION = "--accept-card-tuning"


class ModelLoadError(ValueError):
    """A model directory the runtime cannot use at all (one-line message)."""


@dataclass(frozen=True)
class Artifact:
    """One verified runnable file: an ONNX graph or a TensorRT engine."""

    path: Path
    precision: str
    sidecar: dict[str, Any]

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
    accept_card_tuning: bool = False
    """Whether re-tuned thresholds / alarm labels were accepted at load (the opt-in)."""
    card_changes: tuple[str, ...] = ()
    """Changes to the card since export accepted by ``accept_card_tuning`` (one line each)."""
    _sidecars: list[tuple[Path, dict[str, Any]]] = field(
        default_factory=list, init=False, repr=False
    )  # (artifact, sidecar) of every ONNX file whose SHA-256 matched: what export recorded

    # ------------------------------------------------------------------ card shortcuts

    @property
    def thresholds(self) -> dict[str, float]:
        return {lab: float(self.card.thresholds[lab]) for lab in self.card.labels}

    @property
    def weights(self) -> Path | None:
        """The safetensors weights if present and verified (the PyTorch reference backend
        needs them); None when missing or refused (see ``refused``)."""
        path = self.directory / (self.card.weights.get("file") or WEIGHTS_FILE)
        return path if path.is_file() and path.name not in self.refused else None

    def graph_sha256(self, precision: str) -> str:
        """The SHA-256 of the ONNX graph at ``precision`` (else the FP32 graph's, else the
        weights'): the model identity result messages carry."""
        for artifact in (self.onnx.get(precision), self.onnx.get("fp32")):
            if artifact is not None and artifact.sidecar.get("sha256"):
                return str(artifact.sidecar["sha256"])
        return str(self.card.weights.get("sha256", ""))

    @property
    def gflop_per_window(self) -> float | None:
        """What one window costs (GFLOP, 2 x the MACs of the convolutions and matrix
        products), as the export counted it on the FP32 graph and recorded in the sidecars
        of the files it wrote; None for a directory exported before the count existed
        (``mrm-edge export --model DIR --restamp`` adds it)."""
        for _, sidecar in self._sidecars:
            cost = sidecar.get("cost")
            flops = cost.get("flops_per_window") if isinstance(cost, dict) else None
            if isinstance(flops, int) and not isinstance(flops, bool) and flops > 0:
                return flops / 1e9
        return None

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, model_dir: str | Path, *, accept_card_tuning: bool = False) -> DeployedModel:
        """Read ``model_dir``'s card and verify its artifacts; ``accept_card_tuning`` accepts
        thresholds and alarm labels re-tuned since export. ModelLoadError when the directory
        or its card is unusable, the card is not the exported one, or nothing can run."""
        directory = Path(model_dir)
        if not directory.is_dir():
            raise ModelLoadError(f"{directory}: no such model directory")
        try:
            card = ModelCard.load(directory)
        except ValueError as e:  # ModelCardError is a ValueError with a one-line message
            raise ModelLoadError(str(e)) from e
        model = cls(directory.resolve(), card, accept_card_tuning=accept_card_tuning)
        for variant, filename in ONNX_FILES.items():
            path = model.directory / filename
            # A sidecar without its file is reported (the export wrote both; one is lost).
            if path.exists() or sidecar_path(path).exists():
                model._add_onnx(path, variant)
        for path in sorted(model.directory.glob(ENGINE_GLOB)):
            model._add_engine(path)
        model._check_weights()
        model._check_card_as_exported()
        if not model.onnx and not model.engines and model.weights is None:
            detail = "; ".join(f"{k}: {v}" for k, v in model.refused.items())
            raise ModelLoadError(
                f"{directory}: nothing runnable (no verified model.onnx, engine or weights"
                + (f"; refused {detail})" if detail else "); run `mrm-edge export` first")
            )
        return model

    def _check_weights(self) -> None:
        """Refuse corrupt or pickle weights (listed in ``refused``: only the PyTorch backend
        reads them, so they stop no other); name pickle files that will not load."""
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
        """Why the graph's input/output contradict the card, or None. The graph itself is read
        when the ``onnx`` package is here (a sidecar can be rewritten beside a swapped file);
        on an edge install without it, the shapes the export recorded in the sidecar."""
        try:
            io: Any = onnx_io(path)
        except ImportError:  # edge install without onnx: what the export recorded
            io = sidecar if "inputs" in sidecar else None
        except Exception as e:  # not a parseable ONNX: say so rather than run it
            return f"not a readable ONNX graph ({' '.join(str(e).split())[:120]})"
        if io is None:  # neither: selection's zero-window check is the only one
            return None
        ins, outs = io.get("inputs"), io.get("outputs")
        if not (isinstance(ins, list) and isinstance(outs, list) and len(ins) == len(outs) == 1):
            return "expected one input and one output tensor"
        card = self.card
        n_leads, n_labels = len(card.leads), len(card.labels)
        expect = (
            ("input", ins[0], [n_leads, card.window_samples], f"{n_leads} leads"),
            ("output", outs[0], [n_labels], f"{n_labels} labels: {', '.join(card.labels)}"),
        )
        for what, tensor, want, meaning in expect:
            if not isinstance(tensor, dict):
                return f"{what} is not described"
            name, shape = tensor.get("name", what), tensor.get("shape")
            wanted = f"[batch, {', '.join(map(str, want))}]"
            if not isinstance(shape, list) or len(shape) != len(want) + 1:
                return f"{what} '{name}' has shape {shape!r}, the card needs {wanted} ({meaning})"
            # A named (or unknown) input dimension is dynamic: it takes the card's. A label
            # dimension must be fixed: its outputs are matched to the labels by position.
            dims = zip(shape[1:], want, strict=True)
            if what == "output":
                bad = any(d != w for d, w in dims)
            else:
                bad = any(isinstance(d, int) and d > 0 and d != w for d, w in dims)
            if bad:
                return f"{what} '{name}' has shape {shape}, the card needs {wanted} ({meaning})"
            if tensor.get("dtype") not in (None, "float"):
                return f"{what} '{name}' is {tensor['dtype']}, expected float (float32)"
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

    def _check_card_as_exported(self) -> None:
        """Refuse the directory (ModelLoadError, one line) when the card differs from what an
        intact ONNX sidecar says it was exported with; keep accepted re-tunes in
        ``card_changes``. A sidecar recording nothing about the card (hand-written) vouches
        for nothing and is skipped."""
        card_path = self.directory / CARD_FILE
        for artifact, sidecar in self._sidecars:
            side = sidecar_path(artifact).name
            if "exported_card" in sidecar:
                changes = card_changes(sidecar["exported_card"], self.card)
                if changes is None:
                    raise ModelLoadError(
                        f"{self.directory / side}: 'exported_card' is not a record written by "
                        "`mrm-edge export` (its values do not match its SHA-256); refused"
                    )
            elif sidecar.get("source_card_sha256") not in (None, sha256_file(card_path)):
                raise ModelLoadError(
                    f"{card_path}: changed since export ({side}, written before per-field "
                    "records, holds only the whole card's SHA-256, so the fields cannot be "
                    "named); refused. Restore the exported card.json (then `mrm-edge export "
                    "--model DIR --restamp` records its fields) or re-export the model"
                )
            else:
                continue
            if not changes:
                continue
            said = ", ".join(
                f"{path} changed since export ({shown(now, 40)}, exported {shown(then, 40)})"
                for path, now, then in changes[:3]
            ) + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else "")
            fixed = [p for p, _, _ in changes if p.split(".")[0] not in TUNABLE_FIELDS]
            if fixed:
                fields = ", ".join(dict.fromkeys(p.split(".")[0] for p in fixed))
                raise ModelLoadError(
                    f"{card_path}: {said}; refused ({fields} must be what "
                    f"{artifact.name} was exported with: re-export the model)"
                )
            if not self.accept_card_tuning:
                raise ModelLoadError(
                    f"{card_path}: {said}; refused. To run re-tuned thresholds or alarm "
                    f"labels deliberately, pass {ACCEPT_TUNING_OPTION}"
                )
            self.card_changes = tuple(
                f"{card_path.name}: {path} {shown(now, 40)} (exported {shown(then, 40)}), "
                f"accepted by {ACCEPT_TUNING_OPTION}"
                for path, now, then in changes
            )

    def _add_onnx(self, path: Path, variant: str) -> None:
        precision = precision_of(variant)
        try:
            sidecar = verify_artifact(path)
        except ValueError as e:
            self.refused[path.name] = str(e)
            return
        self._sidecars.append((path, sidecar))
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
        self.onnx[variant] = Artifact(path, precision, sidecar)

    def _add_engine(self, path: Path) -> None:
        parsed = parse_engine_filename(path.name)
        if parsed is None:
            self.refused[path.name] = f"{path}: not an engine name model.<precision>.<key>.engine"
            return
        try:
            sidecar = read_engine_sidecar(path)
            verify_engine_file(path, sidecar)
        except EngineRefused as e:
            self.refused[path.name] = str(e)
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
        self.engines.append(Artifact(path, precision, sidecar))

    # ------------------------------------------------------------------ description

    def tuning_lines(self) -> list[str]:
        """What a command prints at start under the opt-in: each accepted change, or that
        there was none (nothing without the opt-in: an unaccepted change never loads)."""
        if not self.accept_card_tuning:
            return []
        return list(self.card_changes) or [
            f"{ACCEPT_TUNING_OPTION}: {CARD_FILE} is as exported, nothing to accept"
        ]
