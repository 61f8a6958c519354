"""``mrm-edge predict``: classify whole recordings (or synthetic patients) window by window."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mrm_edge.cli.common import model_path
from mrm_edge.cli.options import card_tuning_option, model_option, user_errors


@click.command()
@click.argument("records", nargs=-1, type=click.Path(exists=False))
@model_option(must_exist=False)
@click.option(
    "--patients",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Synthetic patients to generate when no RECORDS are given.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Length of each synthetic recording.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per window on stdout.")
@click.option(
    "--rail-mv",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The recorder's saturation rail in mV: a lead at the rail is flagged (as monitor).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Draw each recording's first 10 s window in the 12-lead layout (3 x 4 + rhythm "
    "strip II, 25 mm/s, 10 mm/mV) with its probabilities: FILE.svg or FILE.png (PNG needs "
    "the 'plot' extra). Several recordings: FILE-<name>.svg each.",
)
@card_tuning_option()
@user_errors
def predict(
    records: tuple[str, ...],
    model_dir: str | None,
    patients: int,
    seconds: float,
    seed: int,
    as_json: bool,
    rail_mv: float | None,
    plot_path: str | None,
    accept_card_tuning: bool,
) -> None:
    """Classify recordings (WFDB, CPSC .mat, DICOM, HL7 aECG, GE MUSE, Philips Sierra, EDF,
    SCP-ECG: docs/formats.md), or synthetic patients if none are given.

    Each recording is cut into consecutive windows of the model's length. A window with a
    bad lead (NaN, flat line, at the --rail-mv rail) is shown as rejected with the reason,
    never classified. A file that cannot be read or is shorter than one window is refused
    with its reason (one line); the others are still classified, and the exit status is 1.
    """
    from mrm_edge.predict import classify
    from mrm_edge.runtime.stream.quality import QualityConfig

    model = model_path(model_dir)
    if plot_path is not None and Path(plot_path).suffix.lower() not in (".svg", ".png"):
        raise click.UsageError(f"--plot {plot_path}: expected a .svg or .png file name")
    recs, refused = _recordings(model, records, patients, seconds, seed)
    quality = QualityConfig(saturation_mv=rail_mv)
    results = []
    if recs:
        results, reason = classify(
            recs, model, quality=quality, accept_card_tuning=accept_card_tuning
        )
        click.echo(f"backend: {reason}", err=True)
    if plot_path is not None:
        for written in _plots(Path(plot_path), recs, results, model):
            click.echo(f"12-lead view: {written}", err=True)
    rejected = [r for r in results if r.status != "ok"]
    if rejected:
        click.echo(f"{len(rejected)} window(s) rejected (bad signal, not classified)", err=True)
    if as_json:
        for r in results + refused:
            click.echo(json.dumps(asdict(r)))
    else:
        _print_table(model.name, results + refused)
    if refused:
        raise click.ClickException(f"{len(refused)} of {len(records)} files refused (see above)")


def _recordings(
    model: Path, records: tuple[str, ...], patients: int, seconds: float, seed: int
) -> tuple[list[Any], list[Any]]:
    """The named recordings that can be classified (their notes on stderr) and a refused
    result for each that cannot (its reason on stderr), else ``patients`` synthetic ones.
    A single named file that cannot be read is the command's one error line."""
    from mrm_edge.card import ModelCard
    from mrm_edge.data.errors import DataError
    from mrm_edge.predict import PredictedWindow, check_long_enough
    from mrm_edge.records import Recording, read_recording

    if not records:
        from mrm_edge.data.synthetic import make_patients, synthesize

        fs = 500
        return [
            Recording(f"synthetic-{i}-{p.rhythm}", synthesize(p, seconds, fs=fs), fs)
            for i, p in enumerate(make_patients(patients, seed))
        ], []
    card = ModelCard.load(model)
    recs, refused = [], []
    for path in records:
        try:
            rec = read_recording(path)
            check_long_enough(rec, card)
        except DataError as e:
            if len(records) == 1:
                raise
            click.echo(f"refused: {e}", err=True)
            refused.append(PredictedWindow(Path(path).name, 0.0, 0.0, {}, [], "refused", str(e)))
            continue
        for note in rec.notes:
            click.echo(f"note: {rec.path or rec.name}: {note}", err=True)
        recs.append(rec)
    return recs, refused


def _plots(path: Path, recs: list[Any], results: list[Any], model_dir: Path) -> list[Path]:
    """The 12-lead page of each recording's first window (FILE, or FILE-<name> for many)."""
    from mrm_edge.card import ModelCard
    from mrm_edge.ecgplot import save_twelve_lead

    card = ModelCard.load(model_dir)
    alarm = set(card.alarm_findings)
    written = []
    for rec in recs:
        first = next(r for r in results if r.recording == rec.name)
        target = path if len(recs) == 1 else path.with_name(f"{path.stem}-{rec.name}{path.suffix}")
        n = round(card.window_seconds * rec.sampling_rate)
        title = f"{rec.name} {first.start_s:.0f}-{first.end_s:.0f} s" + (
            "" if first.status == "ok" else f" REJECTED: {first.reason}"
        )
        written.append(
            save_twelve_lead(
                target,
                rec.signal[:, :n],
                rec.sampling_rate,
                title=title,
                probabilities=first.probabilities,
                findings=[lab for lab in first.positive if lab in alarm],
            )
        )
    return written


def _print_table(model_name: str, results: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"MRM-Net predictions ({model_name})")
    t.add_column("recording")
    t.add_column("window", justify="right")
    t.add_column("findings (≥ threshold)")
    t.add_column("probabilities")
    for r in results:
        top = sorted(r.probabilities.items(), key=lambda kv: -kv[1])
        t.add_row(
            r.recording,
            f"{r.start_s:.0f}-{r.end_s:.0f} s",
            (", ".join(r.positive) or "—") if r.status == "ok" else r.status.upper(),
            "  ".join(f"{k} {v:.2f}" for k, v in top) if r.status == "ok" else r.reason,
        )
    Console().print(t)
