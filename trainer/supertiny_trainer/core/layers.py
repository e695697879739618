"""Which layers a layer-pruning step keeps (encoder-prune-layers, decoder-prune-layers)."""

from __future__ import annotations

from .errors import ConfigError


def layers_to_keep(total: int, layers: int, keep_layers: list[int]) -> list[int]:
    """Which of `total` layers stay: `keep_layers` as given, else `layers` evenly spaced from first to last."""
    if keep_layers:
        if keep_layers[-1] >= total:
            raise ConfigError(
                f"config field 'keep_layers': the model has {total} layers (0..{total - 1}), got {keep_layers}"
            )
        if len(keep_layers) == total:
            raise ConfigError(f"config field 'keep_layers' keeps all {total} layers: nothing to prune")
        return list(keep_layers)
    if layers >= total:
        raise ConfigError(f"config field 'layers' must be below the model's {total} layers to prune any, got {layers}")
    if layers == 1:
        return [total - 1]
    return sorted({round(i * (total - 1) / (layers - 1)) for i in range(layers)})


def validate_layer_choice(layers: int, keep_layers: list[int]) -> None:
    """The config's `layers` and `keep_layers`, checked before any model is read."""
    if layers < 1:
        raise ConfigError(f"config field 'layers' must be >= 1, got {layers}")
    if keep_layers and (sorted(set(keep_layers)) != keep_layers or min(keep_layers) < 0):
        raise ConfigError(
            f"config field 'keep_layers' must list distinct layer indices >= 0 in increasing order, got {keep_layers}"
        )
