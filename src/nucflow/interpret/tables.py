"""LOO tables without torch: columns, gathering shards, the arrays file, sequence letters.

The arrays file (``loo_<mode>.npz``, no pickles) holds, for ``n`` sequences and ``r`` rows:
``sequence_ids`` (n), ``base_values`` (n, the original predictions), ``labels`` (n, as text),
``row_splits`` (n + 1: sequence ``i`` owns rows ``row_splits[i]:row_splits[i+1]``),
``values`` (r, the LOO scores), ``tokens`` (r), ``start_offset`` / ``end_offset`` (r) and, in
replace mode, ``replacements`` (r). A ``shap.Explanation`` of sequence ``i`` is::

    data = numpy.load("loo_mask.npz")            # allow_pickle stays False
    a, b = data["row_splits"][i : i + 2]
    shap.Explanation(values=data["values"][a:b], base_values=data["base_values"][i],
                     feature_names=list(data["tokens"][a:b]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

LOO_COLUMNS = ["sequence", "token", "label", "pred", "start_offset", "end_offset", "loo"]
"""Columns of a LOO table (``replacement`` follows ``token`` in replace mode)."""


def loo_columns(mode: str) -> list[str]:
    """Column names of a LOO table for ``mode``."""
    columns = list(LOO_COLUMNS)
    if mode == "replace":
        columns.insert(2, "replacement")
    return columns


def read_loo_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A LOO CSV with tokens kept as text (``NA`` and ``N`` stay letters)."""
    return pd.read_csv(path, keep_default_na=False, na_values={"label": [""]}, dtype={"token": str})


def sequence_letters(table: pd.DataFrame) -> str:
    """One sequence's letters rebuilt from its rows (tokens without ``#`` specifier suffixes);
    positions no unit covers are blanks."""
    if table.empty:
        return ""
    letters = [" "] * int(table["end_offset"].max())
    for token, start in zip(table["token"], table["start_offset"], strict=True):
        text = str(token).split("#", 1)[0]
        letters[int(start) : int(start) + len(text)] = text
    return "".join(letters)


def write_loo_arrays(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """The compact arrays file of a LOO table (module docstring), written atomically."""
    ids = pd.unique(frame["sequence"]).tolist()
    sequence_rows = frame.groupby("sequence", sort=False)
    counts = sequence_rows.size().reindex(ids).to_numpy()
    firsts = sequence_rows.first().reindex(ids)
    arrays = {
        "sequence_ids": np.asarray(ids, dtype=str),
        "base_values": firsts["pred"].to_numpy(dtype=np.float64),
        "labels": firsts["label"].astype(str).to_numpy(dtype=str),
        "row_splits": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "values": frame["loo"].to_numpy(dtype=np.float32),
        "tokens": frame["token"].astype(str).to_numpy(dtype=str),
        "start_offset": frame["start_offset"].to_numpy(dtype=np.int64),
        "end_offset": frame["end_offset"].to_numpy(dtype=np.int64),
    }
    if "replacement" in frame:
        arrays["replacements"] = frame["replacement"].astype(str).to_numpy(dtype=str)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def gather_loo(
    shard_paths: Sequence[str | os.PathLike[str]],
    out_csv: str | os.PathLike[str],
    out_npz: str | os.PathLike[str],
    mode: str,
    plots_dir: str | os.PathLike[str] | None = None,
    n_plots: int = 0,
    window: int = 40,
) -> pd.DataFrame:
    """Concatenate shard tables in order into one CSV and its arrays file.

    With ``plots_dir`` (created even when empty), the first ``n_plots`` sequences are plotted
    there, their letters rebuilt from the table (:func:`sequence_letters`).
    """
    columns = loo_columns(mode)
    frames = []
    for path in shard_paths:
        frame = read_loo_table(path)
        if list(frame.columns) != columns:
            raise InputError(f"{path}: columns {list(frame.columns)}, expected {columns}")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    write_loo_arrays(frame, out_npz)
    if plots_dir is not None:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        chosen = pd.unique(frame["sequence"]).tolist()[:n_plots]
        if chosen:
            from nucflow.interpret.plots import plot_loo_tables  # matplotlib only when plotting

            part = frame[frame["sequence"].isin(chosen)]
            groups = part.groupby("sequence", sort=False)
            letters = {name: sequence_letters(rows) for name, rows in groups}
            plot_loo_tables(part, letters, plots_dir, window=window)
    return frame
