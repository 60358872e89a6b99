"""Rule tracks_predict: a binding bigWig (32-bp bins) and peaks from an ATAC bigWig."""

from nucflow.runner import run_logged
from nucflow.tracks_steps import predict_tracks

sm = snakemake  # noqa: F821 - injected by Snakemake
predict = sm.params.predict
raise SystemExit(
    run_logged(
        sm.log[0],
        predict_tracks,
        model_dir=sm.input.model,
        genome=sm.input.genome,
        signal=sm.input.signal,
        cache_dir=sm.params.cache,
        out_path=sm.output.bigwig,
        peaks_path=sm.output.peaks,
        chroms=predict["chroms"],
        step=predict["step"],
        batch_size=predict["batch_size"],
        reverse_complement_average=predict["reverse_complement"],
        threshold=predict["threshold"],
        chrom_sizes=sm.input.get("chrom_sizes"),
        missing=sm.params.data["missing_chromosomes"],
        threads=sm.threads,
    )
)
