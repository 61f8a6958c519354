"""The ``mrm-edge`` command line: the group here, one module per command (heavy imports inside
the commands: docs/architecture.md)."""

from __future__ import annotations

import click

from mrm_edge import __version__
from mrm_edge.cli.bench.command import bench
from mrm_edge.cli.distill import distill
from mrm_edge.cli.doctor.command import doctor
from mrm_edge.cli.eval import eval_cmd
from mrm_edge.cli.export import export
from mrm_edge.cli.monitor import monitor
from mrm_edge.cli.outbox import outbox
from mrm_edge.cli.predict import predict
from mrm_edge.cli.send import send
from mrm_edge.cli.serve.command import serve
from mrm_edge.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mrm-edge")
def main() -> None:
    """MRM-Net 12-lead ECG classification: train, evaluate, export, monitor."""


# The order `mrm-edge --help` lists them in is click's (alphabetical), whatever this is.
for _command in (
    train,
    distill,
    eval_cmd,
    export,
    monitor,
    outbox,
    bench,
    doctor,
    send,
    predict,
    serve,
):
    main.add_command(_command)
