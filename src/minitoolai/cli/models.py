"""``minitoolai models``: what serves each image model name, and fetching its weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from minitoolai.catalog import IMAGE_DEFAULT_CFG_SCALE, IMAGE_DEFAULT_SCHEDULER, IMAGE_DEFAULT_STEPS
from minitoolai.cli import output
from minitoolai.cli.options import JsonOpt
from minitoolai.settings import Settings

if TYPE_CHECKING:
    from minitoolai.engines.diffusion import CheckpointConfig

app = typer.Typer(help="Image models: what serves each name, fetch weights.", no_args_is_help=True)


def _image_checkpoints() -> dict[str, CheckpointConfig]:
    """What serves each image name, from the config file; a bad file is a one-line error."""
    from minitoolai.engines.diffusion import resolve_checkpoints

    try:
        return resolve_checkpoints(Settings().load_file().image_models)
    except ValueError as exc:
        output.console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every public image model name, what serves it, and whether its weights are here."""
    from minitoolai.engines.diffusion import weights_present

    checkpoints = _image_checkpoints()
    # What a request that names no sampler, steps or CFG scale gets: the same for every model.
    defaults = {
        "scheduler": IMAGE_DEFAULT_SCHEDULER,
        "steps": IMAGE_DEFAULT_STEPS,
        "cfg_scale": IMAGE_DEFAULT_CFG_SCALE,
    }
    rows = [
        {
            "model": name,
            "checkpoint": cfg.checkpoint,
            "architecture": cfg.architecture,
            "timestep_spacing": cfg.timestep_spacing,
            **defaults,
            "enabled": cfg.enabled,
            "stand_in": cfg.stand_in,
            "weights_present": weights_present(cfg),
        }
        for name, cfg in checkpoints.items()
    ]
    if as_json:
        output.print_json(rows)
        return
    from rich.table import Table

    table = Table(
        "model",
        "checkpoint",
        "arch",
        "spacing",
        "weights",
        caption=(
            f"A request without scheduler, steps or cfgScale gets {IMAGE_DEFAULT_SCHEDULER}, "
            f"{IMAGE_DEFAULT_STEPS} steps, cfg {IMAGE_DEFAULT_CFG_SCALE:g}, whatever the model."
        ),
    )
    for r in rows:
        mark = "[green]present[/green]" if r["weights_present"] else "[red]missing[/red]"
        note = " (stand-in)" if r["stand_in"] else ""
        table.add_row(
            str(r["model"]),
            f"{r['checkpoint']}{note}",
            str(r["architecture"]),
            str(r["timestep_spacing"]),
            mark if r["enabled"] else "disabled",
        )
    output.console.print(table)


@app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A public image model name.")]) -> None:
    """Download a model's weights into the Hugging Face cache (needs a network)."""
    from minitoolai.engines.diffusion import WeightsUnavailable, pull

    checkpoints = _image_checkpoints()
    if name not in checkpoints:
        output.console.print(
            f"[red]error:[/red] no image model {name!r}; see `minitoolai models list`"
        )
        raise typer.Exit(2)
    try:
        located = pull(checkpoints[name], progress=True)
    except WeightsUnavailable as exc:
        output.console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    output.console.print(f"{name}: weights ready at {located.path}")
