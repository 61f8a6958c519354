"""``mrm-edge outbox``: what the durable outbox holds and why, and the operator's hand on it
(resend a refused message, discard one with a reason that is logged). docs/outbox.md."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from mrm_edge.cli.options import user_errors


def _outbox(path: Path | None):
    from mrm_edge.runtime.outbox.store import Outbox
    from mrm_edge.runtime.sinks.outbox import DEFAULT_OUTBOX
    from mrm_edge.runtime.user_cache import user_cache_dir

    path = path or user_cache_dir(DEFAULT_OUTBOX)
    if not path.is_file():
        raise click.ClickException(f"{path}: no outbox here (give --outbox FILE)")
    return Outbox(path)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


outbox_path_option = click.option(
    "--outbox",
    "outbox_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The outbox file (default: the monitor's, in the user cache).",
)


@click.group()
def outbox() -> None:
    """Show and manage the result outbox (messages waiting for HL7 / FHIR receivers)."""


@outbox.command("show")
@outbox_path_option
@user_errors
def show(outbox_path: Path | None) -> None:
    """Every message not yet delivered, oldest first: pending, or refused with the reason."""
    box = _outbox(outbox_path)
    messages = box.messages()
    if not messages:
        click.echo(f"{box.path}: empty (everything was delivered)")
        return
    for m in messages:
        why = f"  ({m.last_error})" if m.last_error else ""
        click.echo(
            f"{m.seq:>6}  {m.state:<8}  {m.channel}  {m.stream_id}  {m.message_id}  "
            f"{_when(m.created)}  {m.attempts} attempt(s){why}"
        )
    click.echo(f"{len(messages)} message(s) in {box.path}")


def _one(box, seq: int):
    found = [m for m in box.messages() if m.seq == seq]
    if not found:
        raise click.ClickException(f"{box.path}: no undelivered message {seq}")
    return found[0]


@outbox.command("resend")
@click.argument("seq", type=int)
@click.option("--reason", required=True, help="Why (kept in the outbox's log).")
@outbox_path_option
@user_errors
def resend(seq: int, reason: str, outbox_path: Path | None) -> None:
    """Put refused message SEQ back in line (a running monitor sends it next)."""
    box = _outbox(outbox_path)
    msg = _one(box, seq)
    if msg.state != "rejected":
        raise click.ClickException(f"message {seq} is {msg.state}, not refused: nothing to do")
    box.resend(msg, reason)
    click.echo(f"message {seq} ({msg.message_id}) back in line for {msg.channel}")


@outbox.command("discard")
@click.argument("seq", type=int)
@click.option("--reason", required=True, help="Why (kept in the outbox's log).")
@outbox_path_option
@user_errors
def discard(seq: int, reason: str, outbox_path: Path | None) -> None:
    """Drop message SEQ undelivered; the reason is logged."""
    box = _outbox(outbox_path)
    msg = _one(box, seq)
    box.discard(msg, reason)
    click.echo(f"message {seq} ({msg.message_id}) discarded: {reason}")


@outbox.command("log")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@outbox_path_option
@user_errors
def log(limit: int, outbox_path: Path | None) -> None:
    """What happened to messages, newest first (delivered, refused, resent, discarded)."""
    box = _outbox(outbox_path)
    for at, seq, channel, message_id, action, reason in box.history(limit):
        why = f"  {reason}" if reason else ""
        click.echo(f"{_when(at)}  {action:<9}  {seq:>6}  {channel}  {message_id}{why}")
