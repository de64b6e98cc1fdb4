"""Does the trained stage-3 model use its history tokens at inference?

Along each benchmark video the candidate generates clip after clip as ``longvie generate`` does
(conditioning frame = last generated frame, decoded and encoded again; history = the previous
clip's last latents; unified noise). At every clip after the first, the same clip is also
generated without the history, from the same conditioning frame, controls, caption and start
noise; and once more without it from other noise. The script prints how far apart the versions
are (PSNR between them: history on vs off, and one noise vs another) and what each scores
against the reference. A model that uses its history changes its frames with it at least as
much as a new draw of noise does.
All figures come from this one run.

    .venv/bin/python bench/history_use.py [--clips=4] [--model=PATH] [--out=JSON]
        [hydra overrides ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "history_use.json"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0 ** 2 / error))


def main(args: list[str]) -> int:
    import torch

    from longvie.benchmark.run import benchmark_sources, load_model
    from longvie.config import compose
    from longvie.generation.long_video import HISTORY_NOISE_BLEND, control_latents, padded_span
    from longvie.generation.plan import plan_clips
    from longvie.generation.sources import stored_video
    from longvie.model.backbone import LatentCodec
    from longvie.model.sampler import ClipInputs, sample_clip
    from longvie.training.clips import to_frames, video_tensor

    clips_text, args = take_option(args, "clips", "4")
    out_text, args = take_option(args, "out", str(RESULTS))
    model_text, overrides = take_option(args, "model", "")
    config = compose(overrides)
    folder = Path(model_text) if model_text else Path(config.paths.models) / "stage3" / "model"
    if not folder.is_dir():
        print(f"history_use: no trained model at {folder}: run `make run` first", file=sys.stderr)
        return 2
    started = time.perf_counter()
    parts = load_model(config.model, folder)
    codec, transformer = LatentCodec(parts.vae), parts.transformer.eval()
    generation, clip_frames = config.generation, config.video.clip_frames
    history_count = generation.history_frames // 4
    null_text = parts.text_encoder.encode([""])
    rows = []
    for source in benchmark_sources(config):
        video = stored_video(config, source)
        spans = plan_clips(video.num_frames, clip_frames)[: int(clips_text)]
        frame = video_tensor(video.first_frame()[None]).unsqueeze(0)[:, :, 0]
        noise = latents = None
        for span in spans:
            reference = video.reference(span.start, span.stop)
            dense, sparse = control_latents(codec, *padded_span(video, span))
            condition = codec.condition(frame, clip_frames, config.model.condition_encoding)
            text = parts.text_encoder.encode([video.caption_at(span.start)])
            if noise is None:
                noise = torch.randn(dense.shape,
                                    generator=torch.Generator().manual_seed(generation.seed))
            start = noise.clone()
            history = None
            if latents is not None:
                start[:, :, 0] = (HISTORY_NOISE_BLEND * latents[:, :, -1]
                                  + (1 - HISTORY_NOISE_BLEND) * noise[:, :, 0])
                history = latents[:, :, -history_count:]

            def clip(history_latents, start_noise=start):
                inputs = ClipInputs(condition, text, null_text, dense, sparse, history_latents)
                return sample_clip(transformer, inputs, start_noise, generation.steps,
                                   generation.shift, generation.guidance)

            with_history = clip(history)
            frames = to_frames(codec.decode(with_history))
            if history is not None:
                without = to_frames(codec.decode(clip(None)))
                other = torch.randn(start.shape, generator=torch.Generator().manual_seed(
                    generation.seed + 1 + span.index))
                other_noise = to_frames(codec.decode(clip(None, other)))
                rows.append({"video": source, "clip": span.index,
                             "psnr_between_db": psnr(frames[1:], without[1:]),
                             "psnr_other_noise_db": psnr(without[1:], other_noise[1:]),
                             "psnr_with_history_db": psnr(frames[1:], reference[1:]),
                             "psnr_without_history_db": psnr(without[1:], reference[1:])})
                print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in rows[-1].items()), flush=True)
            latents = with_history
            frame = video_tensor(frames[-1:]).unsqueeze(0)[:, :, 0]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in
               ("psnr_between_db", "psnr_other_noise_db", "psnr_with_history_db",
                "psnr_without_history_db")}
    result = {"model": str(folder), "history_frames": generation.history_frames,
              "clips": rows, "mean": summary,
              "seconds": round(time.perf_counter() - started, 1)}
    out = Path(out_text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("mean over clips: " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
