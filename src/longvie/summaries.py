"""What each step prints when it ends: one summary per report, shared by the CLI and `make run`
(orchestration/main_job.py), so both say the same."""

from __future__ import annotations

import json


def print_control(control: dict) -> None:
    heldout = control["heldout"]
    generated = heldout["generated"]
    print(f"  control: DiT + controller {control['steps']} steps, "
          f"{control['train_seconds'] or 0:.0f} s of training -> {control['model']}")
    print(f"  held-out loss with controls / zeroed: "
          f"{heldout['loss_ratio_controls_vs_zeroed']:.3f}")
    if "decoder" in control:
        decoder = control["decoder"]
        print(f"  decoder: {decoder['steps']} adversarial steps (weight {decoder['weight']:g}), "
              f"{decoder['train_seconds'] or 0:.0f} s -> vae/ (round trip sharpness "
              f"{decoder['heldout']['sharpness_ratio']:.2f}, PSNR "
              f"{decoder['heldout']['psnr_db']:.2f} dB on corpus clips)")
    rows = [("static", generated["static"]), ("controls only", generated["controls_only"]),
            ("VAE round trip", generated["vae_reconstruction"])]
    rows += [(name.replace("_", " "), figures) for name, figures in generated.items()
             if name.startswith("guidance_")]
    for name, figures in rows:
        print(f"  {name:>14}: SSIM {figures['ssim']:.3f}, PSNR {figures['psnr_db']:.2f} dB, "
              f"sharpness ratio {figures['sharpness_ratio']:.2f}, track EPE "
              f"{figures['track_epe_px'] or float('nan'):.2f} px")


def print_promotion(report: dict) -> None:
    previous = report["previous_champion"]
    print(f"promote: version {report['candidate_version']} -> {report['decision']} "
          f"(previous champion: {previous if previous is not None else 'none'})")
    for reason in report["reasons"]:
        print(f"  {reason}")
    if report.get("comparisons"):
        print(f"  wins need more than k = {report['k_standard_errors']:g} standard errors over "
              "seeds:")
    for c in report.get("comparisons", []):
        print(f"    {'win ' if c['won'] else 'no  '} {c['metric']:<20} vs {c['against']:<9} "
              f"{c['difference']:+.4g} (needs > {c['needed']:.3g})")


def print_base_summary(report: dict) -> None:
    held_out = report["heldout"]
    if "pretrained" in report:
        made = report["provenance"]
        version = report.get("mlflow", {}).get("version")
        print(f"train base: loaded the pretrained base {report['pretrained']}"
              + (f" (made by `{made['command']}`, corpus {made['corpus_version']}, VAE "
                 f"{made['vae_steps']} + DiT {made['dit_steps']} steps)" if made else "")
              + f"; held-out flow-matching loss {held_out['flow_matching_loss']:.4f}"
              + (f"; longvie version {version}" if version else "")
              + f", {report['seconds']:.0f} s")
        return
    print(
        f"train base: VAE {report['vae']['steps']} steps (held-out PSNR "
        f"{report['vae']['heldout_psnr_db']} dB), DiT {report['steps']} steps, held-out "
        f"flow-matching loss {held_out['flow_matching_loss_at_init']:.4f} at init -> "
        f"{held_out['flow_matching_loss']:.4f}, {report['seconds']:.0f} s -> {report['model']}"
    )


def print_stage_summary(report: dict) -> None:
    """The stage's held-out comparison: each figure after training, and before (in brackets)."""
    held_out = report["heldout"]
    previous = report["stage"].replace("stage", "")
    figures = ", ".join(
        f"{name.removeprefix('loss_')} {value:.4f}"
        for name, value in held_out.items()
        if name.startswith("loss_") and isinstance(value, float)
    )
    version = report.get("mlflow", {}).get("version")
    print(f"train stage {previous}: {report['steps']} steps in {report['train_seconds']:.0f} s "
          f"(all {report['seconds']:.0f} s); held-out flow-matching loss: {figures}"
          + (f"; registered as longvie version {version}" if version else "")
          + f" -> {report['model']}")


# Rejected files listed by name under the curate summary (the rest are in rejected.parquet).
REJECTED_SHOWN = 10


def print_curation_summary(report: dict) -> None:
    print(
        f"curate: {report['videos_in']} videos in, {report['videos_curated']} curated, "
        f"{report['clips']} clips {json.dumps(report['clips_by_split'])}, "
        f"{len(report['rejected'])} rejected, {report['seconds']:.1f} s"
    )
    for reason, count in report["reasons_histogram"].items():
        print(f"  rejected {count:>3} x {reason}")
    shown = report["rejected"][:REJECTED_SHOWN]
    for row in shown:
        segment = f" {row['segment']}" if row.get("segment") else ""
        print(f"    {row['path']}{segment}: {row['reason']}")
    if len(report["rejected"]) > len(shown):
        print(f"    ... {len(report['rejected']) - len(shown)} more in "
              f"{report.get('rejected_table', 'rejected.parquet')}")


def print_controls_summary(report: dict) -> None:
    tracking, depth = report["tracking"], report["depth"]
    print(
        f"controls: {report['videos']} videos, {report['extracted']} extracted "
        f"({report['computed']} computed, {report['up_to_date']} up to date) "
        f"{json.dumps(report['by_kind'])}, {len(report['failed'])} failed, "
        f"{report['seconds']:.1f} s"
    )
    if tracking["points"]:
        print(
            f"  KLT vs ground truth on {tracking['videos']} held-out videos: median EPE "
            f"{tracking['median_epe_px']:.2f} px (zero motion {tracking['zero_motion_median_epe_px']:.2f}"
            f" px), visibility accuracy {tracking['visibility_accuracy']:.3f} "
            f"(always-visible {tracking['always_visible_accuracy']:.3f})"
        )
    if depth["pixels"]:
        print(
            f"  depth model vs ground truth: AbsRel {depth['abs_rel']:.3f}, delta1 "
            f"{depth['delta1']:.3f} (constant: {depth['constant_abs_rel']:.3f}, "
            f"{depth['constant_delta1']:.3f})"
        )
    for failure in report["failed"]:
        print(f"  failed {failure['path']}: {failure['reason']}")


BENCHMARK_ROWS = ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope", "ssim_vde",
                  "flicker", "dynamic", "sharpness_ratio", "track_epe_px", "depth_pearson")


def print_benchmark_summary(report: dict) -> None:
    models = report["models"]
    names = list(models)
    state = " (up to date: reused)" if report.get("up_to_date") else ""
    seeds = report.get("seeds", [0])
    spread = report.get("seed_sd", {})
    print(f"benchmark: candidate version {report['candidate_version']}, "
          f"{len(report['videos'])} videos, {len(seeds)} sampler seed(s), "
          f"{report['seconds']:.0f} s{state}")
    if len(seeds) > 1:
        print("  (frame-quality figures: mean ± standard deviation over the seeds)")
    print(f"  {'metric':<20}" + "".join(f"{name:>20}" for name in names))
    for metric in BENCHMARK_ROWS:
        cells = []
        for name in names:
            value, sd = models[name].get(metric), spread.get(name, {}).get(metric)
            text = "-" if value is None else format(value, ".5g")
            cells.append(text if sd is None else f"{text} ± {sd:.1g}")
        print(f"  {metric:<20}" + "".join(f"{cell:>20}" for cell in cells))
    for metric, reason in report["skipped"].items():
        print(f"  skipped {metric}: {reason}")
