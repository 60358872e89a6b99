"""Hyperparameter search spaces and defaults of the raw-signal models (Capfinder's, fixed).

:func:`suggest_hyperparameters` draws, through an Optuna trial, the constructor
hyperparameters of one of :data:`~nucflow.models.signal.SIGNAL_ARCHITECTURES` (everything but
``target_length`` and ``n_classes``) plus ``"learning_rate"``, which the caller pops before
:func:`~nucflow.models.registry.build_model`. The ranges are Capfinder's (reference §7.2),
with its keras-tuner defect fixed: ranges that depend on tensor shapes (how many conv and LSTM
layers fit, the largest kernel) were frozen at the first build, with minimum values; here they
follow the length actually reached as the layers are drawn.

Optuna parameter names, per architecture:

- ``cnn_lstm`` / ``attention_cnn_lstm``: ``conv_layers``, ``filters_i``, ``kernel_size_i``,
  ``dropout_i``, ``lstm_layers``, ``lstm_units_i``, ``lstm_dropout_i``, ``dense_units``,
  ``dense_dropout``, ``learning_rate``;
- ``encoder``: ``d_model``, ``num_transformer_blocks``, ``head_size``, ``num_heads``,
  ``ff_dim``, ``dropout``, ``num_mlp_layers``, ``mlp_units_i``, ``mlp_dropout``,
  ``learning_rate``;
- ``resnet``: ``initial_filters``, ``initial_kernel``, ``num_stages``,
  ``num_blocks_per_stage``, ``filters_stage_s``, ``kernel_stage_s_block_b``, ``dense_units``,
  ``dropout``, ``learning_rate``.

Kernel sizes are drawn as integers with step 2 from 3 (1 when the length is below 3) up to the
largest odd value ≤ min(7, current length). Optuna lets an integer range change between
trials (a categorical's choices may not), so this is the original's intended set {3, 5, 7}
clamped to the length, without distinct parameter names per allowed set; for the ResNet the
"current length" of a block is its output length (after its stride). Dropout rates are
multiples of 0.1 (rounded to 6 decimals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nucflow.errors import InputError
from nucflow.models.signal import SIGNAL_ARCHITECTURES

if TYPE_CHECKING:
    import optuna

LSTM_LEARNING_RATES = (1e-2, 1e-3, 1e-4)
"""Learning-rate choices of the CNN-LSTM families (Capfinder's Choice)."""
LEARNING_RATE_RANGE = (1e-4, 1e-2)
"""Log-uniform learning-rate range of the encoder and the ResNet."""
DEFAULT_LEARNING_RATE = 1e-3
"""Learning rate used when tuning is off."""

_KEYS: Mapping[str, tuple[str, ...]] = {
    "cnn_lstm": (
        "conv_filters",
        "kernel_sizes",
        "conv_dropouts",
        "lstm_units",
        "lstm_dropouts",
        "dense_units",
        "dense_dropout",
        "learning_rate",
    ),
    "encoder": (
        "d_model",
        "num_heads",
        "head_size",
        "ff_dim",
        "num_transformer_blocks",
        "dropout",
        "mlp_units",
        "mlp_dropout",
        "learning_rate",
    ),
    "resnet": (
        "initial_filters",
        "initial_kernel",
        "filters_per_stage",
        "kernels",
        "dense_units",
        "dropout",
        "learning_rate",
    ),
}


def _keys(architecture: str) -> tuple[str, ...]:
    """The hyperparameter names ``architecture``'s search space returns."""
    if architecture not in SIGNAL_ARCHITECTURES:
        raise InputError(
            f"unknown signal architecture '{architecture}' "
            f"(expected one of: {', '.join(SIGNAL_ARCHITECTURES)})"
        )
    return _KEYS["cnn_lstm" if architecture == "attention_cnn_lstm" else architecture]


def _floor_log2(value: int) -> int:
    """⌊log2 value⌋ for a positive integer (exact)."""
    return max(value, 1).bit_length() - 1


def _max_kernel(length: int) -> int:
    """The largest odd kernel ≤ min(7, length), at least 1."""
    cap = min(7, max(length, 1))
    return cap if cap % 2 else cap - 1


def _check_length(architecture: str, target_length: Any) -> int:
    """``target_length`` as an int that the architecture can read."""
    minimum = 2 if architecture == "cnn_lstm" else 1
    if isinstance(target_length, bool) or not isinstance(target_length, int):
        raise InputError(f"{architecture}: target_length must be an integer, got {target_length!r}")
    if target_length < minimum:
        raise InputError(f"{architecture}: target_length must be >= {minimum}, got {target_length}")
    return target_length


class _Draw:
    """Draws hyperparameters from an Optuna trial unless ``fixed`` provides them."""

    def __init__(
        self, trial: optuna.trial.BaseTrial, architecture: str, fixed: Mapping[str, Any] | None
    ) -> None:
        self.trial = trial
        self.architecture = architecture
        self.fixed = dict(fixed or {})
        allowed = _keys(architecture)
        unknown = sorted(set(self.fixed) - set(allowed))
        if unknown:
            raise InputError(
                f"{architecture}: cannot fix unknown hyperparameter(s) {', '.join(unknown)} "
                f"(expected some of: {', '.join(allowed)})"
            )

    def integer(self, name: str, low: int, high: int, step: int = 1) -> int:
        """An int in [low, high] on the ``step`` grid from ``low`` (high rounded down onto it)."""
        high = low + max(high - low, 0) // step * step
        return self.trial.suggest_int(name, low, high, step=step)

    def rate(self, name: str, low: float = 0.1, high: float = 0.5) -> float:
        """A dropout rate, a multiple of 0.1 in [low, high]."""
        return round(self.trial.suggest_float(name, low, high, step=0.1), 6)

    def kernel(self, name: str, length: int) -> int:
        """An odd kernel from 3 (or 1) up to the largest odd value ≤ min(7, length)."""
        high = _max_kernel(length)
        return self.trial.suggest_int(name, 3 if high >= 3 else 1, high, step=2)

    def learning_rate(self) -> float:
        """Capfinder's learning rate: a choice for the LSTM families, else log-uniform."""
        if "learning_rate" in self.fixed:
            return self.fixed["learning_rate"]
        if self.architecture in ("cnn_lstm", "attention_cnn_lstm"):
            return self.trial.suggest_categorical("learning_rate", list(LSTM_LEARNING_RATES))
        return self.trial.suggest_float("learning_rate", *LEARNING_RATE_RANGE, log=True)

    def value(self, key: str, draw: Any) -> Any:
        """``fixed[key]`` when given, else ``draw()``."""
        return self.fixed[key] if key in self.fixed else draw()

    def count(self, keys: Sequence[str], name: str, low: int, high: int) -> int:
        """How many layers: the common length of the fixed lists among ``keys``, else drawn."""
        lengths = set()
        for key in keys:
            if key in self.fixed:
                values = self.fixed[key]
                if not isinstance(values, Sequence) or isinstance(values, str) or not values:
                    raise InputError(
                        f"{self.architecture}: fixed {key} must be a non-empty list, got {values!r}"
                    )
                lengths.add(len(values))
        if len(lengths) > 1:
            raise InputError(
                f"{self.architecture}: fixed {', '.join(k for k in keys if k in self.fixed)} "
                "must have the same number of items"
            )
        if lengths:
            return lengths.pop()
        return self.integer(name, low, max(high, low))

    def item(self, key: str, index: int, draw: Any) -> Any:
        """Item ``index`` of the fixed list ``key`` when given, else ``draw()``."""
        return self.fixed[key][index] if key in self.fixed else draw()


def _lstm_family(draw: _Draw, target_length: int, attention: bool) -> dict[str, Any]:
    """cnn_lstm / attention_cnn_lstm: conv stack, LSTM stack, dense head, learning rate."""
    cap = 256 if attention else 128
    conv_cap = _floor_log2(target_length) - 1
    if attention:
        conv_cap = min(conv_cap, 5)
    n_conv = draw.count(
        ("conv_filters", "kernel_sizes", "conv_dropouts"), "conv_layers", 1, conv_cap
    )
    length = target_length
    filters: list[int] = []
    kernels: list[int] = []
    conv_rates: list[float] = []
    for i in range(n_conv):
        top = min(cap, 32 * 2 ** (i + 1))
        filters.append(
            draw.item(
                "conv_filters", i, lambda i=i, top=top: draw.integer(f"filters_{i}", 32, top, 32)
            )
        )
        kernels.append(
            draw.item("kernel_sizes", i, lambda i=i, n=length: draw.kernel(f"kernel_size_{i}", n))
        )
        conv_rates.append(draw.item("conv_dropouts", i, lambda i=i: draw.rate(f"dropout_{i}")))
        if not attention or length > 2:
            length //= 2
    lstm_cap = _floor_log2(length) + 1
    if attention:
        lstm_cap = min(lstm_cap, 3)
    n_lstm = draw.count(("lstm_units", "lstm_dropouts"), "lstm_layers", 1, lstm_cap)
    units: list[int] = []
    lstm_rates: list[float] = []
    for i in range(n_lstm):
        top = min(cap, 32 * 2 ** (i + 1))
        units.append(
            draw.item(
                "lstm_units", i, lambda i=i, top=top: draw.integer(f"lstm_units_{i}", 32, top, 32)
            )
        )
        lstm_rates.append(draw.item("lstm_dropouts", i, lambda i=i: draw.rate(f"lstm_dropout_{i}")))
    return {
        "conv_filters": filters,
        "kernel_sizes": kernels,
        "conv_dropouts": conv_rates,
        "lstm_units": units,
        "lstm_dropouts": lstm_rates,
        "dense_units": draw.value(
            "dense_units", lambda: draw.integer("dense_units", 16, min(cap, 2 * units[-1]), 16)
        ),
        "dense_dropout": draw.value("dense_dropout", lambda: draw.rate("dense_dropout")),
        "learning_rate": draw.learning_rate(),
    }


def _encoder(draw: _Draw) -> dict[str, Any]:
    """The transformer encoder: Capfinder's ranges plus the model width ``d_model``."""
    space: dict[str, Any] = {
        "d_model": draw.value("d_model", lambda: draw.integer("d_model", 32, 256, 32)),
        "num_transformer_blocks": draw.value(
            "num_transformer_blocks", lambda: draw.integer("num_transformer_blocks", 1, 8)
        ),
        "head_size": draw.value("head_size", lambda: draw.integer("head_size", 32, 256, 32)),
        "num_heads": draw.value("num_heads", lambda: draw.integer("num_heads", 1, 8)),
        "ff_dim": draw.value("ff_dim", lambda: draw.integer("ff_dim", 32, 512, 32)),
        "dropout": draw.value("dropout", lambda: draw.rate("dropout")),
    }
    n_mlp = draw.count(("mlp_units",), "num_mlp_layers", 1, 3)
    space["mlp_units"] = [
        draw.item("mlp_units", i, lambda i=i: draw.integer(f"mlp_units_{i}", 32, 256, 32))
        for i in range(n_mlp)
    ]
    space["mlp_dropout"] = draw.value("mlp_dropout", lambda: draw.rate("mlp_dropout"))
    space["learning_rate"] = draw.learning_rate()
    return space


def _resnet(draw: _Draw, target_length: int) -> dict[str, Any]:
    """The ResNet: stem, stages of residual blocks, dense head."""
    space: dict[str, Any] = {
        "initial_filters": draw.value(
            "initial_filters", lambda: draw.integer("initial_filters", 32, 128, 32)
        ),
        "initial_kernel": draw.value(
            "initial_kernel", lambda: draw.kernel("initial_kernel", target_length)
        ),
    }
    n_stages = draw.count(("filters_per_stage", "kernels"), "num_stages", 2, 4)
    if "kernels" in draw.fixed:
        stages = draw.fixed["kernels"]
        if not all(isinstance(stage, Sequence) and stage for stage in stages):
            raise InputError(
                f"resnet: fixed kernels must be a list of non-empty lists, got {stages!r}"
            )
        n_blocks = [len(stage) for stage in stages]
    else:
        n_blocks = [draw.integer("num_blocks_per_stage", 2, 4)] * n_stages
    length = -(-target_length // 2)  # after the stem's MaxPool(3, stride 2, same)
    filters: list[int] = []
    kernels: list[list[int]] = []
    for s in range(n_stages):
        filters.append(
            draw.item(
                "filters_per_stage", s, lambda s=s: draw.integer(f"filters_stage_{s}", 64, 256, 64)
            )
        )
        stage: list[int] = []
        for b in range(n_blocks[s]):
            if s > 0 and b == 0:
                length = -(-length // 2)
            if "kernels" not in draw.fixed:
                stage.append(draw.kernel(f"kernel_stage_{s}_block_{b}", length))
        kernels.append(stage if "kernels" not in draw.fixed else list(draw.fixed["kernels"][s]))
    space["filters_per_stage"] = filters
    space["kernels"] = kernels
    space["dense_units"] = draw.value(
        "dense_units", lambda: draw.integer("dense_units", 32, 256, 32)
    )
    space["dropout"] = draw.value("dropout", lambda: draw.rate("dropout", 0.0, 0.5))
    space["learning_rate"] = draw.learning_rate()
    return space


def suggest_hyperparameters(
    trial: optuna.trial.BaseTrial,
    architecture: str,
    target_length: int,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Draw ``architecture``'s hyperparameters (and ``"learning_rate"``) through ``trial``.

    ``fixed`` maps names of the returned dictionary (e.g. ``"conv_filters"``,
    ``"learning_rate"``) to values used instead of drawing them; those are not registered with
    the trial. A fixed list also fixes the layer count it implies (``conv_layers`` for
    ``conv_filters``, …). Unknown architectures or fixed names raise :class:`InputError`.
    """
    draw = _Draw(trial, architecture, fixed)
    target_length = _check_length(architecture, target_length)
    if architecture in ("cnn_lstm", "attention_cnn_lstm"):
        space = _lstm_family(draw, target_length, attention=architecture == "attention_cnn_lstm")
    elif architecture == "encoder":
        space = _encoder(draw)
    else:
        space = _resnet(draw, target_length)
    return {key: _plain(value) for key, value in space.items()}


def _plain(value: Any) -> Any:
    """``value`` with every (nested) sequence as a list, as JSON would read it back."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(item) for item in value]
    return value


def default_hyperparameters(architecture: str, target_length: int) -> dict[str, Any]:
    """Small sensible hyperparameters (and ``"learning_rate"`` 1e-3) inside the search space."""
    _keys(architecture)
    target_length = _check_length(architecture, target_length)
    if architecture in ("cnn_lstm", "attention_cnn_lstm"):
        n_conv = max(1, min(2, _floor_log2(target_length) - 1))
        kernels = []
        length = target_length
        for _ in range(n_conv):
            kernels.append(min(5, _max_kernel(length)))
            length = length // 2 if architecture == "cnn_lstm" or length > 2 else length
        return {
            "conv_filters": [32, 64][:n_conv],
            "kernel_sizes": kernels,
            "conv_dropouts": [0.2] * n_conv,
            "lstm_units": [64],
            "lstm_dropouts": [0.2],
            "dense_units": 64,
            "dense_dropout": 0.2,
            "learning_rate": DEFAULT_LEARNING_RATE,
        }
    if architecture == "encoder":
        return {
            "d_model": 64,
            "num_heads": 4,
            "head_size": 32,
            "ff_dim": 128,
            "num_transformer_blocks": 2,
            "dropout": 0.1,
            "mlp_units": [64],
            "mlp_dropout": 0.1,
            "learning_rate": DEFAULT_LEARNING_RATE,
        }
    stem = -(-target_length // 2)
    return {
        "initial_filters": 32,
        "initial_kernel": _max_kernel(target_length),
        "filters_per_stage": [64, 128],
        "kernels": [[min(3, _max_kernel(stem))] * 2, [min(3, _max_kernel(-(-stem // 2)))] * 2],
        "dense_units": 64,
        "dropout": 0.2,
        "learning_rate": DEFAULT_LEARNING_RATE,
    }


def trial_parameters(architecture: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The Optuna parameters that :func:`suggest_hyperparameters` would draw as
    ``hyperparameters``, e.g. for ``study.enqueue_trial`` (start a search from the defaults).
    """
    keys = _keys(architecture)
    missing = [key for key in keys if key not in hyperparameters]
    if missing:
        raise InputError(f"{architecture}: hyperparameters lack {', '.join(missing)}")
    hp = hyperparameters
    params: dict[str, Any]
    if architecture in ("cnn_lstm", "attention_cnn_lstm"):
        params = {"conv_layers": len(hp["conv_filters"])}
        for i, (f, k, r) in enumerate(
            zip(hp["conv_filters"], hp["kernel_sizes"], hp["conv_dropouts"], strict=True)
        ):
            params |= {f"filters_{i}": f, f"kernel_size_{i}": k, f"dropout_{i}": r}
        params["lstm_layers"] = len(hp["lstm_units"])
        for i, (u, r) in enumerate(zip(hp["lstm_units"], hp["lstm_dropouts"], strict=True)):
            params |= {f"lstm_units_{i}": u, f"lstm_dropout_{i}": r}
        params |= {"dense_units": hp["dense_units"], "dense_dropout": hp["dense_dropout"]}
    elif architecture == "encoder":
        params = {key: hp[key] for key in keys if key != "mlp_units"}
        params["num_mlp_layers"] = len(hp["mlp_units"])
        params |= {f"mlp_units_{i}": u for i, u in enumerate(hp["mlp_units"])}
    else:
        blocks = {len(stage) for stage in hp["kernels"]}
        if len(blocks) != 1:
            raise InputError(f"{architecture}: stages with different block counts are not drawn")
        params = {
            "initial_filters": hp["initial_filters"],
            "initial_kernel": hp["initial_kernel"],
            "num_stages": len(hp["filters_per_stage"]),
            "num_blocks_per_stage": blocks.pop(),
            "dense_units": hp["dense_units"],
            "dropout": hp["dropout"],
        }
        for s, (f, stage) in enumerate(zip(hp["filters_per_stage"], hp["kernels"], strict=True)):
            params[f"filters_stage_{s}"] = f
            params |= {f"kernel_stage_{s}_block_{b}": k for b, k in enumerate(stage)}
    params["learning_rate"] = hp["learning_rate"]
    return params
