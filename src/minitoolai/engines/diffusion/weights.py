"""Finding a checkpoint's files on disk (offline), and fetching them where a network exists.

Generation never downloads: ``locate`` only reads local folders and the Hugging Face cache, so a
job for missing weights fails at once with a ``WeightsUnavailable`` that says what to fetch,
instead of hanging on a multi-gigabyte download or a dead network. Fetching is ``pull``, an
explicit operator step (or the engine's opt-in ``allow_download``), whose first request is a
single time-boxed metadata call, so "no network" is also answered in seconds.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from minitoolai.engines.diffusion.checkpoints import CheckpointConfig
from minitoolai.engines.diffusion.errors import WeightsUnavailable

#: pipeline components that hold weights (tokenizers and schedulers are config only)
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_VAE_FILES = ("config.json", "diffusion_pytorch_model.safetensors")


@dataclass(frozen=True, slots=True)
class LocatedWeights:
    """Where one checkpoint's files are on this machine, ready for ``loading.load_pipeline``."""

    kind: Literal["folder", "file"]
    path: Path
    #: component configs + tokenizers for a single file; ``None`` for a diffusers folder
    config_dir: Path | None
    #: a replacement VAE folder, when one applies
    vae_dir: Path | None
    variant: str | None


# --------------------------------------------------------------------------- offline lookup


def cache_root(cache_dir: Path | None) -> Path:
    """The Hugging Face cache the lookups read (``HF_HUB_CACHE`` unless given)."""
    if cache_dir is not None:
        return cache_dir
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str, revision: str | None, cache_dir: Path | None) -> Path | None:
    """The cached snapshot folder of ``repo_id``, or ``None``; never touches the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        path = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True
        )
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None
    return Path(str(path))


def _has_variant(name: str, variant: str) -> bool:
    return f".{variant}." in name or f".{variant}-" in name


def _is_plain(name: str) -> bool:
    """No variant marker: ``model.safetensors`` or a shard ``model-00001-of-00002.safetensors``."""
    return "." not in name.rsplit(".", 1)[0]


def component_weights(folder: Path, variant: str | None) -> Iterator[Path]:
    """The weight files a diffusers folder's components would load for ``variant``."""
    for component in WEIGHT_COMPONENTS:
        sub = folder / component
        if not sub.is_dir():
            continue
        files = sorted(p for p in sub.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES))
        if variant:
            files = [p for p in files if _has_variant(p.name, variant)]
        else:
            files = [p for p in files if _is_plain(p.name)]
        safetensors = [p for p in files if p.suffix == ".safetensors"]
        yield from safetensors or files


def _missing_components(folder: Path, variant: str | None) -> list[str]:
    """Components ``model_index.json`` lists whose weights are absent (an interrupted copy)."""
    index = json.loads((folder / "model_index.json").read_text())
    listed = [c for c in WEIGHT_COMPONENTS if isinstance(index.get(c), list) and index[c][0]]
    present = {p.parent.name for p in component_weights(folder, variant)}
    return [c for c in listed if c not in present]


def _hub_fix(cfg: CheckpointConfig, repo: str, cache: Path, include: str = "") -> str:
    rev = f" --revision {cfg.revision}" if cfg.revision else ""
    return (
        f"Download it where a network exists with `hf download {repo}{rev}{include}` and copy "
        f"the Hugging Face cache ({cache}) to this machine, or download it into a folder and set "
        f'checkpoint = "/that/folder" under [image_models.{cfg.name}] in the config file.'
    )


def _locate_main(cfg: CheckpointConfig, cache_dir: Path | None) -> tuple[str, Path]:
    """("folder" | "file", path) of the checkpoint itself."""
    kind = cfg.source_kind
    cache = cache_root(cache_dir)
    if kind in ("local_dir", "local_file"):
        path = Path(cfg.checkpoint).expanduser()
        if kind == "local_file" and path.is_file():
            return "file", path
        if kind == "local_dir" and (path / "model_index.json").is_file():
            return "folder", path
        what = "a .safetensors checkpoint" if kind == "local_file" else "a diffusers folder"
        found = "nothing is there" if not path.exists() else f"it is not {what}"
        raise WeightsUnavailable(
            cfg.name,
            f"Image model '{cfg.name}' is configured with checkpoint = '{cfg.checkpoint}' "
            f"([image_models.{cfg.name}]), but {found}. Put {what}"
            f"{' (with model_index.json)' if kind == 'local_dir' else ''} at that path, or point "
            "the setting elsewhere.",
            fetch=str(path),
        )
    if kind == "hub_file":
        from huggingface_hub import try_to_load_from_cache

        repo, filename = _split_hub_file(cfg.checkpoint)
        hit = try_to_load_from_cache(repo, filename, cache_dir=cache_dir, revision=cfg.revision)
        if isinstance(hit, str):
            return "file", Path(hit)
        raise WeightsUnavailable(
            cfg.name,
            f"Image model '{cfg.name}' needs the file '{filename}' of the Hugging Face repo "
            f"'{repo}', which is not in the model cache. "
            + _hub_fix(cfg, repo, cache, f" {filename}"),
            fetch=cfg.checkpoint,
        )
    snapshot = cached_snapshot(cfg.checkpoint, cfg.revision, cache_dir)
    if snapshot is None:
        raise WeightsUnavailable(
            cfg.name,
            f"Image model '{cfg.name}' needs the Hugging Face repo '{cfg.checkpoint}', which is "
            "not in the model cache. " + _hub_fix(cfg, cfg.checkpoint, cache),
            fetch=cfg.checkpoint,
        )
    if (snapshot / "model_index.json").is_file():
        missing = _missing_components(snapshot, cfg.variant)
        if missing:
            raise WeightsUnavailable(
                cfg.name,
                f"Image model '{cfg.name}': the cached copy of '{cfg.checkpoint}' lacks weights "
                f"for {', '.join(missing)}"
                f"{f' (variant {cfg.variant})' if cfg.variant else ''}. "
                + _hub_fix(cfg, cfg.checkpoint, cache),
                fetch=cfg.checkpoint,
            )
        return "folder", snapshot
    singles = sorted(snapshot.glob("*.safetensors"))
    if len(singles) == 1:
        return "file", singles[0]
    if not singles:
        raise WeightsUnavailable(
            cfg.name,
            f"Image model '{cfg.name}': the cached copy of '{cfg.checkpoint}' holds no weights "
            "(no model_index.json, no .safetensors file). " + _hub_fix(cfg, cfg.checkpoint, cache),
            fetch=cfg.checkpoint,
        )
    raise WeightsUnavailable(
        cfg.name,
        f"Image model '{cfg.name}': the cached repo '{cfg.checkpoint}' has no model_index.json "
        f"and {len(singles)} top-level .safetensors files; name the one to use as "
        f'checkpoint = "{cfg.checkpoint}/<file>.safetensors" under [image_models.{cfg.name}].',
        fetch=cfg.checkpoint,
    )


def _locate_folder_source(
    cfg: CheckpointConfig, source: str, role: str, cache_dir: Path | None, include: str
) -> Path:
    """A local folder or a cached repo snapshot used as ``role`` (a VAE, a config source)."""
    local = Path(source).expanduser()
    if source.startswith(("/", "./", "../", "~")) or local.exists():
        if local.is_dir():
            return local
        raise WeightsUnavailable(
            cfg.name,
            f"Image model '{cfg.name}' uses '{source}' as its {role}, and nothing is there.",
            fetch=source,
        )
    snapshot = cached_snapshot(source, None, cache_dir)
    if snapshot is not None:
        return snapshot
    raise WeightsUnavailable(
        cfg.name,
        f"Image model '{cfg.name}' uses the Hugging Face repo '{source}' as its {role}, which is "
        f"not in the model cache. Download it where a network exists with "
        f"`hf download {source}{include}` and copy the cache ({cache_root(cache_dir)}) here.",
        fetch=source,
    )


def locate(
    cfg: CheckpointConfig, *, half_precision: bool, cache_dir: Path | None = None
) -> LocatedWeights:
    """Every file ``cfg`` needs at this precision, found offline; else ``WeightsUnavailable``."""
    kind, path = _locate_main(cfg, cache_dir)
    config_dir = None
    if kind == "file":
        config_dir = _locate_folder_source(
            cfg,
            cfg.base_config,
            "component config source",
            cache_dir,
            ' --include "*.json" "*.txt"',
        )
    vae = cfg.vae_for(half_precision=half_precision)
    vae_dir = None
    if vae:
        include = "".join(f' "{f}"' for f in _VAE_FILES)
        vae_dir = _locate_folder_source(cfg, vae, "VAE", cache_dir, f" --include{include}")
    return LocatedWeights(
        "folder" if kind == "folder" else "file", path, config_dir, vae_dir, cfg.variant
    )


def weights_present(
    cfg: CheckpointConfig, *, half_precision: bool = False, cache_dir: Path | None = None
) -> bool:
    """Whether ``cfg`` can be loaded here without a network (local files or the HF cache)."""
    try:
        locate(cfg, half_precision=half_precision, cache_dir=cache_dir)
    except WeightsUnavailable:
        return False
    return True


# --------------------------------------------------------------------------- size estimate


def _safetensors_numel(path: Path) -> int:
    """Parameters in a .safetensors file, read from its JSON header (no tensor is loaded).

    An unreadable header counts as fp32 storage (4 bytes a parameter): the load that follows
    reports the broken file properly; an estimate only decides what to evict first.
    """
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header: dict[str, Any] = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error):
        return path.stat().st_size // 4
    total = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        numel = 1
        for dim in entry["shape"]:
            numel *= int(dim)
        total += numel
    return total


def _numel(files: Iterable[Path]) -> int:
    # A .bin (pickle) header cannot be read safely: assume fp32 storage, 4 bytes a parameter.
    return sum(
        _safetensors_numel(p) if p.suffix == ".safetensors" else p.stat().st_size // 4
        for p in files
    )


def estimate_bytes(located: LocatedWeights, bytes_per_param: int) -> int:
    """Memory the loaded pipeline will take, from the weight files' headers.

    Used before loading to make room in the cache; the measured size replaces it after loading.
    """
    if located.kind == "file":
        params = _numel([located.path])
    else:
        files = list(component_weights(located.path, located.variant))
        if located.vae_dir is not None:
            files = [p for p in files if p.parent.name != "vae"]
        params = _numel(files)
    if located.vae_dir is not None:
        params += _numel(p for p in located.vae_dir.glob("*.safetensors") if p.name in _VAE_FILES)
    return params * bytes_per_param


# --------------------------------------------------------------------------- download


def _split_hub_file(checkpoint: str) -> tuple[str, str]:
    """``owner/name/path/file.safetensors`` -> (``owner/name``, ``path/file.safetensors``)."""
    owner, name, filename = checkpoint.split("/", 2)
    return f"{owner}/{name}", filename


def _diffusers_files(files: list[str], variant: str | None, where: str) -> list[str]:
    """The files of a diffusers repo worth downloading: configs, tokenizers, one weight set.

    Such repos often also hold an all-in-one .safetensors at the top and fp32 + fp16 copies of
    every component; fetching only what ``from_pretrained`` loads saves gigabytes.
    """
    wanted = ["model_index.json"]
    for f in files:
        parts = f.split("/")
        if len(parts) == 2 and f.endswith((".json", ".txt")):
            wanted.append(f)
    for component in WEIGHT_COMPONENTS:
        weights = [
            f
            for f in files
            if f.startswith(f"{component}/") and f.count("/") == 1 and f.endswith(".safetensors")
        ]
        if variant:
            weights = [f for f in weights if _has_variant(f.rsplit("/", 1)[1], variant)]
        else:
            weights = [f for f in weights if _is_plain(f.rsplit("/", 1)[1])]
        listed = any(f.startswith(f"{component}/") for f in files)
        if listed and not weights:
            raise ValueError(
                f"{where} has no{f' {variant}' if variant else ''} .safetensors weights for "
                f'{component}; set variant (e.g. variant = "fp16") to match its files'
            )
        wanted.extend(weights)
    return sorted(set(wanted))


def pull(
    cfg: CheckpointConfig,
    progress: bool = True,
    *,
    half_precision: bool = True,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    timeout_s: float = 10.0,
) -> LocatedWeights:
    """Download whatever ``cfg`` needs from the Hub into the cache, then ``locate`` it.

    ``half_precision`` also fetches the fp16 VAE (small), so one pull serves GPU and CPU.
    ``progress`` shows tqdm bars. No network, a missing repo or a refused licence raises
    ``WeightsUnavailable``; each metadata request is time-boxed by ``timeout_s``.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise WeightsUnavailable(
            cfg.name,
            f"Cannot download image model '{cfg.name}' ({cfg.checkpoint}): HF_HUB_OFFLINE is set "
            "on this machine; unset it where a network exists, or place the files locally and "
            f"set [image_models.{cfg.name}] checkpoint = <path>.",
            fetch=cfg.checkpoint,
        )
    jobs: list[tuple[str, list[str] | None]] = []  # (repo id, files or None for "all small")
    try:
        if cfg.source_kind == "hub_repo":
            files = _list_files(cfg.checkpoint, cfg.revision, endpoint, timeout_s)
            if "model_index.json" in files:
                jobs.append((cfg.checkpoint, _diffusers_files(files, cfg.variant, cfg.checkpoint)))
            else:
                singles = [f for f in files if "/" not in f and f.endswith(".safetensors")]
                if len(singles) != 1:
                    raise ValueError(
                        f"{cfg.checkpoint} has {len(singles)} top-level .safetensors files and no "
                        "model_index.json: name the file in checkpoint = 'owner/name/file'"
                    )
                jobs.append((cfg.checkpoint, singles))
        elif cfg.source_kind == "hub_file":
            repo, filename = _split_hub_file(cfg.checkpoint)
            _list_files(repo, cfg.revision, endpoint, timeout_s)  # fails fast with no network
            jobs.append((repo, [filename]))
        if cfg.single_file and not Path(cfg.base_config).expanduser().exists():
            files = _list_files(cfg.base_config, None, endpoint, timeout_s)
            small = [f for f in files if f.endswith((".json", ".txt"))]
            jobs.append((cfg.base_config, small))
        vae = cfg.vae_for(half_precision=half_precision)
        if vae and not Path(vae).expanduser().exists():
            _list_files(vae, None, endpoint, timeout_s)
            jobs.append((vae, list(_VAE_FILES)))
        for repo, allow in jobs:
            _download(
                repo,
                allow,
                cfg.revision if repo == cfg.checkpoint else None,
                cache_dir,
                endpoint,
                timeout_s,
                progress,
            )
    except WeightsUnavailable:
        raise
    except Exception as exc:  # network, auth, licence gate, missing repo: all "cannot fetch"
        raise WeightsUnavailable(
            cfg.name,
            f"Could not download image model '{cfg.name}' ({cfg.checkpoint}): "
            f"{type(exc).__name__}: {exc}",
            fetch=cfg.checkpoint,
        ) from exc
    return locate(cfg, half_precision=half_precision, cache_dir=cache_dir)


def _list_files(
    repo: str, revision: str | None, endpoint: str | None, timeout_s: float
) -> list[str]:
    """The repo's file list by one unretried request: dead networks fail within ``timeout_s``."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint).model_info(repo, revision=revision, timeout=timeout_s)
    return [s.rfilename for s in info.siblings or []]


def _download(
    repo: str,
    allow: list[str] | None,
    revision: str | None,
    cache_dir: Path | None,
    endpoint: str | None,
    timeout_s: float,
    progress: bool,
) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(
        repo,
        revision=revision,
        cache_dir=cache_dir,
        allow_patterns=allow,
        endpoint=endpoint,
        etag_timeout=timeout_s,
        tqdm_class=None if progress else _silent_tqdm(),
    )


def _silent_tqdm() -> Any:
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    class Silent(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent
