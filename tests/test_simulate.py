"""Synthetic demo data: formats open with the real readers, the planted truth holds, seeds work."""

from __future__ import annotations

import csv
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import py2bit
import pyBigWig
import pytest
from Bio import SeqIO

from nucflow.data.simulate import (
    CAP_PATTERNS,
    LNCRNA_MAX_ORF_CODONS,
    REGRESSION_MOTIF_EFFECTS,
    simulate_genome,
    simulate_regression_table,
    simulate_signals,
    simulate_transcripts,
)
from nucflow.errors import InputError

STOPS = {"TAA", "TAG", "TGA"}
CAP_FILES = {"cap_0": 0, "cap_1": 1, "cap_2": 2, "cap_2-1": 3}


def longest_orf_codons(sequence: str) -> int:
    """Longest ATG-initiated ORF over the 3 forward frames, in codons without the stop
    (an ORF without a stop runs to the end of the sequence)."""
    best = 0
    for frame in range(3):
        start = None
        for i in range(frame, len(sequence) - 2, 3):
            codon = sequence[i : i + 3]
            if start is None and codon == "ATG":
                start = i
            elif start is not None and codon in STOPS:
                best = max(best, (i - start) // 3)
                start = None
        if start is not None:
            best = max(best, (len(sequence) - start) // 3)
    return best


def file_bytes(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` by name."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def reverse_complement(sequence: str) -> str:
    return sequence.translate(str.maketrans("ACGT", "TGCA"))[::-1]


# --------------------------------------------------------------------------- transcripts


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory) -> dict[str, Path]:
    return simulate_transcripts(tmp_path_factory.mktemp("transcripts"))


def test_transcript_files_parse(transcripts):
    assert {p.name for p in transcripts.values()} == {
        "protein_coding.fa",
        "lncrna.fa",
        "unlabelled.fa",
        "unlabelled_truth.tsv",
    }
    ids = []
    for key, prefix, count in (
        ("protein_coding", "sim_pc_", 150),
        ("lncrna", "sim_nc_", 150),
        ("unlabelled", "sim_new_", 40),
    ):
        records = list(SeqIO.parse(transcripts[key], "fasta"))
        assert len(records) == count
        for record in records:
            assert record.id.startswith(prefix)
            assert 200 <= len(record.seq) <= 4000
            assert set(str(record.seq)) <= set("ACGT")
        ids += [r.id for r in records]
        lines = transcripts[key].read_text().splitlines()
        assert max(len(line) for line in lines if not line.startswith(">")) == 60
    assert len(ids) == len(set(ids))
    truth = pd.read_csv(transcripts["unlabelled_truth"], sep="\t")
    assert list(truth.columns) == ["id", "class"]
    assert truth["id"].tolist() == [r.id for r in SeqIO.parse(transcripts["unlabelled"], "fasta")]
    assert truth["class"].value_counts().to_dict() == {"protein_coding": 20, "lncrna": 20}


def test_transcript_orfs_are_the_planted_truth(transcripts):
    coding = {r.id: str(r.seq) for r in SeqIO.parse(transcripts["protein_coding"], "fasta")}
    noncoding = {r.id: str(r.seq) for r in SeqIO.parse(transcripts["lncrna"], "fasta")}
    unlabelled = {r.id: str(r.seq) for r in SeqIO.parse(transcripts["unlabelled"], "fasta")}
    truth = pd.read_csv(transcripts["unlabelled_truth"], sep="\t")
    for name, cls in zip(truth["id"], truth["class"], strict=True):
        (coding if cls == "protein_coding" else noncoding)[name] = unlabelled[name]
    for seq in coding.values():
        assert 3 * (longest_orf_codons(seq) + 1) >= 0.5 * len(seq)
    for seq in noncoding.values():
        assert longest_orf_codons(seq) <= LNCRNA_MAX_ORF_CODONS
    # the classes are not separable by length alone
    pc_len = np.median([len(s) for s in coding.values()])
    nc_len = np.median([len(s) for s in noncoding.values()])
    assert 0.5 < pc_len / nc_len < 2


def test_transcripts_deterministic(tmp_path):
    kwargs = {"n_per_class": 10, "n_unlabelled": 5, "max_length": 1000}
    simulate_transcripts(tmp_path / "a", seed=3, **kwargs)
    simulate_transcripts(tmp_path / "b", seed=3, **kwargs)
    simulate_transcripts(tmp_path / "c", seed=4, **kwargs)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert file_bytes(tmp_path / "a")["lncrna.fa"] != file_bytes(tmp_path / "c")["lncrna.fa"]


# --------------------------------------------------------------------------- regression table


@pytest.fixture(scope="module")
def regression(tmp_path_factory) -> dict[str, Path]:
    return simulate_regression_table(tmp_path_factory.mktemp("regression"))


def test_regression_table_format(regression):
    table = pd.read_csv(regression["table"], sep="\t")
    assert list(table.columns) == ["id", "sequence", "label", "split"]
    assert len(table) == 400 and table["id"].is_unique
    assert table["label"].dtype == np.float64
    assert table["split"].dtype == np.int64
    assert set(table["split"]) == set(range(10))
    sizes = table["split"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    for sequence in table["sequence"]:
        tokens = sequence.split(",")
        assert set(tokens) <= set("ACGT")
        assert 150 <= len(tokens) <= 600


def test_regression_label_follows_planted_motifs(regression):
    table = pd.read_csv(regression["table"], sep="\t").set_index("id")
    motifs = pd.read_csv(regression["motifs"], sep="\t")
    assert list(motifs.columns) == ["id", "motif", "start", "end"]
    sequences = {name: seq.replace(",", "") for name, seq in table["sequence"].items()}
    for row in motifs.itertuples():
        assert sequences[row.id][row.start : row.end] == row.motif
    for _, group in motifs.sort_values(["id", "start"]).groupby("id"):
        assert (group["start"].to_numpy()[1:] >= group["end"].to_numpy()[:-1]).all()
    # no chance occurrence: the planted copies are all the copies
    for motif in REGRESSION_MOTIF_EFFECTS:
        found = sum(len(re.findall(f"(?={motif})", s)) for s in sequences.values())
        assert found == (motifs["motif"] == motif).sum()
    effect = motifs["motif"].map(dict(REGRESSION_MOTIF_EFFECTS))
    noise_free = effect.groupby(motifs["id"]).sum().reindex(table.index, fill_value=0.0)
    r = np.corrcoef(noise_free, table["label"])[0, 1]
    assert r > 0.9
    assert np.std(table["label"] - noise_free) < 0.2


# --------------------------------------------------------------------------- signals


@pytest.fixture(scope="module")
def signals(tmp_path_factory) -> dict[str, Path]:
    return simulate_signals(tmp_path_factory.mktemp("signals"))


def test_signal_csvs_parse(signals):
    assert {name: path.name for name, path in signals.items()} == {
        name: f"{name}.csv" for name in CAP_FILES
    }
    csv.field_size_limit(16 * 1024 * 1024)
    read_ids = set()
    for name, label in CAP_FILES.items():
        text = signals[name].read_text()
        assert text.startswith("read_id,cap_class,timeseries\n")
        assert ',"' in text.splitlines()[1]
        with open(signals[name], newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 100
        for row in rows:
            assert list(row) == ["read_id", "cap_class", "timeseries"]
            assert int(row["cap_class"]) == label
            read_ids.add(str(uuid.UUID(row["read_id"])))
            series = np.array([float(v) for v in row["timeseries"].split(",")])
            assert 200 <= series.size <= 600
            assert np.abs(series).max() <= 4.0
    assert len(read_ids) == 400


def test_signal_classes_carry_the_planted_pattern(signals):
    """A matched filter with the class patterns (12 samples per level) recovers the class of
    most reads (chance is 25 %)."""
    templates = {name: np.repeat(np.asarray(CAP_PATTERNS[name], float), 12) for name in CAP_FILES}

    def best_correlation(series: np.ndarray, template: np.ndarray) -> float:
        windows = np.lib.stride_tricks.sliding_window_view(series, template.size)
        centred = windows - windows.mean(axis=1, keepdims=True)
        t = template - template.mean()
        norms = np.linalg.norm(centred, axis=1) * np.linalg.norm(t) + 1e-9
        return float(((centred @ t) / norms).max())

    correct = total = 0
    for name in CAP_FILES:
        for text in pd.read_csv(signals[name])["timeseries"]:
            series = np.array(text.split(","), dtype=float)
            guess = max(templates, key=lambda c: best_correlation(series, templates[c]))
            correct += guess == name
            total += 1
    assert correct / total > 0.6


def test_signals_deterministic(tmp_path):
    simulate_signals(tmp_path / "a", n_per_class=5, seed=7)
    simulate_signals(tmp_path / "b", n_per_class=5, seed=7)
    simulate_signals(tmp_path / "c", n_per_class=5, seed=8)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert file_bytes(tmp_path / "a")["cap_0.csv"] != file_bytes(tmp_path / "c")["cap_0.csv"]


# --------------------------------------------------------------------------- genome


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> dict[str, Path]:
    return simulate_genome(tmp_path_factory.mktemp("genome"))


def read_bed(path: Path, columns: list[str]) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=columns)


def test_genome_sequence_and_sizes(genome):
    sizes = dict(line.split("\t") for line in genome["chrom_sizes"].read_text().splitlines())
    sizes = {k: int(v) for k, v in sizes.items()}
    assert sizes == {"chr1": 300_000, "chr2": 200_000, "chr3": 150_000}
    tb = py2bit.open(str(genome["genome"]), True)
    try:
        assert tb.chroms() == sizes
        sequences = {c: tb.sequence(c) for c in sizes}
        for chrom in sizes:
            assert len(tb.hardMaskedBlocks(chrom)) >= 1
            assert len(tb.softMaskedBlocks(chrom)) >= 1
    finally:
        tb.close()
    for seq in sequences.values():
        for start, end in ((m.start(), m.end()) for m in re.finditer("N+", seq)):
            assert end - start >= 300
        assert set(seq.upper()) == set("ACGTN")
    sites = read_bed(genome["motif_sites"], ["chrom", "start", "end", "name", "score", "strand"])
    assert len(sites) >= 400 and sites["name"].is_unique
    for row in sites.itertuples():
        word = sequences[row.chrom][row.start : row.end].upper()
        assert word == ("TGACTCA" if row.strand == "+" else reverse_complement("TGACTCA"))
    # the planted sites are all the motif occurrences, on either strand
    found = sum(len(re.findall("(?=TGACTCA|TGAGTCA)", seq.upper())) for seq in sequences.values())
    assert found == len(sites)
    blacklist = read_bed(genome["blacklist"], ["chrom", "start", "end"])
    assert len(blacklist) >= 3
    assert (blacklist["start"] < blacklist["end"]).all()
    assert (blacklist["end"] <= blacklist["chrom"].map(sizes)).all()


def test_genome_meta_and_tracks(genome):
    meta_path = genome["meta"]
    meta = pd.read_csv(meta_path, sep="\t")
    assert list(meta.columns) == [
        "Cell_Line",
        "TF",
        "ATAC_Signal_File",
        "Binding_File",
        "ATAC_Peaks",
        "CHIP_Peaks",
        "Train_Test_Label",
    ]
    assert meta["Cell_Line"].tolist() == ["CL1", "CL2", "CL3"]
    assert meta["Train_Test_Label"].tolist() == ["Train", "Train", "Test"]
    assert meta["TF"].nunique() == 1
    sizes = {"chr1": 300_000, "chr2": 200_000, "chr3": 150_000}
    for row in meta.itertuples():
        atac = pyBigWig.open(str(meta_path.parent / row.ATAC_Signal_File))
        chip = pyBigWig.open(str(meta_path.parent / row.Binding_File))
        try:
            assert atac.isBigWig() and chip.isBigWig()
            assert atac.chroms() == sizes and chip.chroms() == sizes
            for chrom, size in sizes.items():
                a = np.asarray(atac.values(chrom, 0, size, numpy=True))
                c = np.asarray(chip.values(chrom, 0, size, numpy=True))
                assert not np.isnan(a).any() and (a >= 0).all() and (a <= 1).all()
                assert set(np.unique(c)) == {0.0, 1.0}
        finally:
            atac.close()
            chip.close()
        for peaks_file in (row.ATAC_Peaks, row.CHIP_Peaks):
            peaks = pd.read_csv(meta_path.parent / peaks_file, sep="\t", header=None)
            assert peaks.shape[1] == 10 and len(peaks) > 20
            assert (peaks[1] >= 0).all() and (peaks[1] < peaks[2]).all()
            assert (peaks[2] <= peaks[0].map(sizes)).all()
            assert ((peaks[9] >= 0) & (peaks[9] < peaks[2] - peaks[1])).all()
            assert peaks[4].between(0, 1000).all()


def test_binding_is_motif_and_accessibility(genome):
    """Bound = a motif site inside an accessible region of that cell line, and nothing else."""
    meta = pd.read_csv(genome["meta"], sep="\t")
    sites = read_bed(genome["motif_sites"], ["chrom", "start", "end", "name", "score", "strand"])
    accessible_somewhere = np.zeros(len(sites), dtype=bool)
    bound_sets = []
    for row in meta.itertuples():
        atac = pd.read_csv(genome["meta"].parent / row.ATAC_Peaks, sep="\t", header=None)
        chip_peaks = pd.read_csv(genome["meta"].parent / row.CHIP_Peaks, sep="\t", header=None)
        in_atac = np.array(
            [
                ((atac[0] == s.chrom) & (atac[1] <= s.start) & (atac[2] >= s.end)).any()
                for s in sites.itertuples()
            ]
        )
        accessible_somewhere |= in_atac
        bw = pyBigWig.open(str(genome["meta"].parent / row.Binding_File))
        try:
            bound = np.array(
                [
                    bw.values(s.chrom, s.start, s.end) == [1.0] * (s.end - s.start)
                    for s in sites.itertuples()
                ]
            )
            unbound = np.array(
                [max(bw.values(s.chrom, s.start, s.end)) == 0.0 for s in sites.itertuples()]
            )
        finally:
            bw.close()
        assert (bound == in_atac).all()
        assert (unbound == ~in_atac).all()
        # every ChIP peak holds a bound site
        for peak in chip_peaks.itertuples():
            inside = sites[
                (sites["chrom"] == peak[1])
                & (sites["start"] >= peak[2])
                & (sites["end"] <= peak[3])
            ]
            assert len(inside) == 1
            assert in_atac[inside.index[0]]
        bound_sets.append(frozenset(np.flatnonzero(bound)))
    # some sites are unbound everywhere (outside accessible regions) ...
    assert (~accessible_somewhere).sum() > 100
    # ... and binding differs between cell lines (cell-specific accessibility)
    assert len(set(bound_sets)) == len(bound_sets)
    assert len(frozenset.intersection(*bound_sets)) > 20


def test_genome_deterministic(tmp_path):
    small = {"chrA": 40_000, "chrB": 25_000}
    simulate_genome(tmp_path / "a", chromosome_lengths=small, seed=5)
    simulate_genome(tmp_path / "b", chromosome_lengths=small, seed=5)
    simulate_genome(tmp_path / "c", chromosome_lengths=small, seed=6)
    first = file_bytes(tmp_path / "a")
    assert first == file_bytes(tmp_path / "b")
    other = file_bytes(tmp_path / "c")
    assert first["genome.2bit"] != other["genome.2bit"]
    assert first["CL1_atac.bw"] != other["CL1_atac.bw"]


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        (simulate_transcripts, {"n_per_class": 0}, "n_per_class"),
        (simulate_transcripts, {"min_length": 500, "max_length": 400}, "min_length"),
        (simulate_regression_table, {"n_sequences": -1}, "n_sequences"),
        (simulate_regression_table, {"motif_effects": {"ACGN": 1.0}}, "motif"),
        (simulate_signals, {"min_length": 10}, "min_length"),
        (simulate_genome, {"cell_lines": ["CL1"]}, "cell_lines"),
        (simulate_genome, {"motif": "TGANTCA"}, "motif"),
        (simulate_genome, {"chromosome_lengths": {"chr1": 1000}}, "length"),
    ],
)
def test_bad_arguments_raise_input_error(tmp_path, function, kwargs, message):
    with pytest.raises(InputError, match=message):
        function(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_simulate_dataset_dispatches_and_rejects_unknown_settings(tmp_path):
    from nucflow.data.simulate import simulate_dataset

    files = simulate_dataset("signals", tmp_path, 5, {"n_per_class": 3})
    assert sorted(files) == ["cap_0", "cap_1", "cap_2", "cap_2-1"]
    with pytest.raises(InputError, match="unknown setting 'bogus' for simulated dataset 'signals'"):
        simulate_dataset("signals", tmp_path / "x", 5, {"bogus": 1})
    with pytest.raises(InputError, match="unknown simulated dataset 'proteins'"):
        simulate_dataset("proteins", tmp_path / "y", 5)


def test_simulated_file_names_match_what_the_generators_write(tmp_path):
    from nucflow.data.simulate import simulate_dataset, simulated_file_names

    settings = {
        "transcripts": {"n_per_class": 3, "n_unlabelled": 2},
        "regression": {"n_sequences": 10},
        "signals": {"n_per_class": 2},
        "genome": {"cell_lines": ["A", "B"]},
    }
    for name, values in settings.items():
        written = simulate_dataset(name, tmp_path / name, 1, values)
        assert sorted(p.name for p in written.values()) == sorted(
            simulated_file_names(name, values)
        )
