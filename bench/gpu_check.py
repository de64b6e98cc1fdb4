"""The `wan14b` path measured on one GPU, with random weights in bf16: the prepared device check.

Nothing can be downloaded on a lent GPU machine, so every part is built from the `wan14b`
profile's own config at random weights. In one run (at most about 8 minutes on one H100):

1. **DiT cost**: Wan2.1-I2V-14B blocks at their real width (5120, 40 heads) with the dual
   controller, on the tokens of an 81-frame 480p clip (480 x 832: 21 x 30 x 52 = 32,760 tokens)
   plus 2 history latents, forward + backward in bf16 with the base frozen and the controller
   trained (as stages 1 and 2 train). Three reduced depths (2 and 4 base blocks
   with 1 controller layer, 4 with 2) give the seconds of one base block, of one controller
   layer and of what is outside the blocks, extrapolated to 40 blocks and 12 controller layers;
   the FLOPs of each run are counted by torch's FlopCounterMode, so achieved TFLOP/s is measured
   against the count, not a formula.
2. **Activation checkpointing** on and off (peak memory and seconds at the reduced depth), and
   the largest batch that fits at the reduced depth with checkpointing, found by trying.
3. **Sampling** one clip with the production sampler (`generation` of `wan14b`: 50 Euler steps,
   guidance 5, 8 history frames) at the reduced depths, extrapolated the same way.
4. **The VAE**: encode and decode one 81-frame 480p clip (Wan2.1's VAE config).
5. **FLOPs of the full model** per clip, counted on the meta device (runs anywhere).
6. **The tiny pipeline's training step** (the `tiny` DiT with its controller, a stage batch) on
   the GPU against this machine's CPU: steps per second.

    .venv/bin/python bench/gpu_check.py [--dry-run | --flops-only] [--out=...json]

``--dry-run`` runs every part on the CPU at toy sizes in float32 (seconds; `make test` runs it);
``--flops-only`` counts the full model's FLOPs at the real sizes, on any machine.
One JSON goes to ``--out`` and a table is printed.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the real production sizes, or toy ones for the dry run."""

    profile_overrides: tuple[str, ...]  # compose() overrides giving the DiT and VAE config
    frames: int
    height: int
    width: int
    history_latents: int
    depths: tuple[tuple[int, int], ...]  # (base blocks, controller layers) measured
    full_depth: tuple[int, int]  # what the measurements extrapolate to
    repeats: int
    sample_steps: int
    guidance: float
    max_batch: int
    tiny_steps: int
    tiny_batch: int
    dtype: str


REAL = Sizes(("profile=wan14b",), 81, 480, 832, 2, ((2, 1), (4, 1), (4, 2)), (40, 12), 3, 50,
             5.0, 16, 20, 8, "bfloat16")
DRY = Sizes(("profile=smoke",), 9, 32, 32, 1, ((2, 1), (4, 1), (4, 2)), (40, 12), 1, 3, 5.0, 2,
            1, 1, "float32")


def composed(sizes: Sizes, *extra: str):
    from longvie.config import compose

    return compose([*sizes.profile_overrides, "model.pretrained=", *extra])


def synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    import torch

    return (round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda"
            else None)


def build_dit(sizes: Sizes, blocks: int, controller_layers: int, device, dtype):
    """The `wan14b` DiT with ``blocks`` base blocks and the dual controller's first
    ``controller_layers`` layers, random weights."""
    import torch
    from diffusers import WanTransformer3DModel

    from longvie.model.backbone import transformer_kwargs
    from longvie.model.controller import DualController, LongVieTransformer

    config = composed(sizes, f"model.transformer.num_layers={blocks}")
    torch.manual_seed(0)
    with torch.device(device):
        base = WanTransformer3DModel(**transformer_kwargs(config.model))
        model = LongVieTransformer(base, DualController(base, controller_layers))
    return model.to(dtype), config


def dit_inputs(sizes: Sizes, config, batch: int, device, dtype) -> dict:
    """Random inputs of one training step: clip, controls and history in the I2V layout."""
    import torch

    transformer = config.model.transformer
    latent_frames = (sizes.frames - 1) // 4 + 1
    vae = config.model.vae
    spatial = (vae.patch_size or 1) * 2 ** (len(vae.dim_mult) - 1)  # as config.load checks
    shape = (batch, transformer.in_channels, latent_frames, sizes.height // spatial,
             sizes.width // spatial)
    generator = None if device.type == "meta" else torch.Generator(device=device).manual_seed(0)

    def noise(*size):
        return torch.randn(*size, generator=generator, device=device, dtype=dtype)

    return {"hidden_states": noise(*shape), "timestep": torch.full((batch,), 500.0, device=device),
            "encoder_hidden_states": noise(batch, config.model.text.max_tokens,
                                           transformer.text_dim),
            "dense": noise(*shape), "sparse": noise(*shape),
            "history": noise(batch, shape[1], sizes.history_latents, *shape[3:]),
            "dense_scale": torch.ones(batch, device=device, dtype=dtype)}


def tokens_of(inputs: dict) -> int:
    _, _, frames, height, width = inputs["hidden_states"].shape
    return frames * (height // 2) * (width // 2)


def timed(step, device, repeats: int) -> float:
    """Seconds of ``step()`` (after one warm-up call), the median of ``repeats``."""
    step()
    synchronise(device)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        synchronise(device)
        seconds.append(time.perf_counter() - started)
    return sorted(seconds)[len(seconds) // 2]


def train_step(model, inputs: dict):
    def step():
        model.zero_grad(set_to_none=True)
        model(**inputs).float().square().mean().backward()

    return step


def optimizer_step(model, optimizer, inputs: dict):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**inputs).float().square().mean().backward()
        optimizer.step()

    return step


def forward_step(model, inputs: dict):
    import torch

    def step():
        with torch.no_grad():
            model(**inputs)

    return step


def counted_flops(step) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def solve_depths(values: dict[tuple[int, int], float], full: tuple[int, int]) -> dict:
    """Per base block, per controller layer and outside-the-blocks parts of a figure measured at
    depths (2, 1), (4, 1), (4, 2), and the figure at ``full`` depth."""
    block = (values[(4, 1)] - values[(2, 1)]) / 2
    layer = values[(4, 2)] - values[(4, 1)]
    rest = values[(2, 1)] - 2 * block - layer
    return {"per_block": block, "per_controller_layer": layer, "outside_blocks": rest,
            "full": rest + full[0] * block + full[1] * layer}


def dit_cost(sizes: Sizes, device, dtype) -> dict:
    """Forward + backward and forward-only seconds, FLOPs, peak memory at each reduced depth,
    without and with activation checkpointing; extrapolated to the full depth."""
    runs = {}
    for blocks, layers in sizes.depths:
        model, config = build_dit(sizes, blocks, layers, device, dtype)
        inputs = dit_inputs(sizes, config, 1, device, dtype)
        row = {"tokens": tokens_of(inputs),
               "trainable_parameters": sum(p.numel() for p in model.parameters()
                                           if p.requires_grad)}
        for checkpointing in (False, True):
            if checkpointing:
                model.base.enable_gradient_checkpointing()
            peak_reset(device)
            seconds = timed(train_step(model, inputs), device, sizes.repeats)
            key = "checkpointing" if checkpointing else "plain"
            row[key] = {"train_s": round(seconds, 4), "peak_gib": peak_gib(device)}
        model.base.disable_gradient_checkpointing()
        row["forward_s"] = round(timed(forward_step(model, inputs), device, sizes.repeats), 4)
        del model, inputs
        counted = meta_flops(sizes, blocks, layers)
        row["train_flops"], row["forward_flops"] = counted["train_controller"], counted["forward"]
        runs[f"{blocks}+{layers}"] = row
    by_depth = {depth: runs[f"{depth[0]}+{depth[1]}"] for depth in sizes.depths}
    full = {
        "train_s": solve_depths({d: r["plain"]["train_s"] for d, r in by_depth.items()},
                                sizes.full_depth),
        "train_s_checkpointing": solve_depths(
            {d: r["checkpointing"]["train_s"] for d, r in by_depth.items()}, sizes.full_depth),
        "forward_s": solve_depths({d: r["forward_s"] for d, r in by_depth.items()},
                                  sizes.full_depth),
        "train_flops": solve_depths({d: r["train_flops"] for d, r in by_depth.items()},
                                    sizes.full_depth),
    }
    full["forward_flops"] = solve_depths({d: r["forward_flops"] for d, r in by_depth.items()},
                                         sizes.full_depth)["full"]
    full["train_tflops_per_s"] = round(
        full["train_flops"]["full"] / full["train_s"]["full"] / 1e12, 2)
    if device.type == "cuda":
        full["peak_gib"] = solve_depths(
            {d: r["plain"]["peak_gib"] for d, r in by_depth.items()}, sizes.full_depth)
        full["peak_gib_checkpointing"] = solve_depths(
            {d: r["checkpointing"]["peak_gib"] for d, r in by_depth.items()}, sizes.full_depth)
    return {"runs": runs, "extrapolated": full}


def meta_flops(sizes: Sizes, blocks: int, controller_layers: int) -> dict:
    """FLOPs of one clip's forward and forward + backward at this depth, counted on the meta
    device: shapes only, so no memory and no GPU, and attention goes through the math path,
    whose FLOPs are a fused kernel's (a fused kernel on the CPU is not counted at all)."""
    import torch

    meta, dtype = torch.device("meta"), getattr(torch, sizes.dtype)
    model, config = build_dit(sizes, blocks, controller_layers, meta, dtype)
    inputs = dit_inputs(sizes, config, 1, meta, dtype)
    return {"tokens": tokens_of(inputs), "history_latents": sizes.history_latents,
            "forward": counted_flops(forward_step(model, inputs)),
            "train_controller": counted_flops(train_step(model, inputs))}


def largest_batch(sizes: Sizes, device, dtype) -> dict:
    """The largest batch of the smallest reduced depth that trains with checkpointing, by trying
    doubling batches up to ``max_batch``."""
    import torch

    blocks, layers = sizes.depths[0]
    model, config = build_dit(sizes, blocks, layers, device, dtype)
    model.base.enable_gradient_checkpointing()
    fits, tried = 0, []
    batch = 1
    while batch <= sizes.max_batch:
        peak_reset(device)
        try:
            inputs = dit_inputs(sizes, config, batch, device, dtype)
            seconds = timed(train_step(model, inputs), device, 1)
        except torch.cuda.OutOfMemoryError:
            tried.append({"batch": batch, "fits": False})
            break
        tried.append({"batch": batch, "fits": True, "train_s": round(seconds, 4),
                      "peak_gib": peak_gib(device)})
        fits = batch
        del inputs
        batch *= 2
    return {"depth": f"{blocks}+{layers}", "largest": fits, "tried": tried}


def sampling_cost(sizes: Sizes, device, dtype) -> dict:
    """One clip with the production sampler at each reduced depth, extrapolated."""
    import torch

    from longvie.model.sampler import ClipInputs, sample_clip

    seconds = {}
    for blocks, layers in sizes.depths:
        model, config = build_dit(sizes, blocks, layers, device, dtype)
        model.eval()
        inputs = dit_inputs(sizes, config, 1, device, dtype)
        generation = config.generation
        history_latents = generation.history_frames // 4
        z = (config.model.transformer.in_channels - 4) // 2  # latent channels: [x | mask | y]
        clip = ClipInputs(
            condition=inputs["hidden_states"][:, :z], text=inputs["encoder_hidden_states"],
            null_text=torch.zeros_like(inputs["encoder_hidden_states"]),
            dense=inputs["dense"][:, :z], sparse=inputs["sparse"][:, :z],
            history=inputs["history"][:, :z, :history_latents])
        noise = torch.randn_like(inputs["hidden_states"][:, :z])

        started = time.perf_counter()
        sample_clip(model, clip, noise, sizes.sample_steps, generation.shift, sizes.guidance,
                    generation.solver)
        synchronise(device)
        seconds[(blocks, layers)] = time.perf_counter() - started
        del model
    return {"steps": sizes.sample_steps, "guidance": sizes.guidance,
            "runs_s": {f"{b}+{k}": round(s, 3) for (b, k), s in seconds.items()},
            "extrapolated_s": solve_depths(seconds, sizes.full_depth)}


def vae_cost(sizes: Sizes, device, dtype) -> dict:
    """Encode and decode one clip with the profile's VAE (random weights)."""
    import torch

    from longvie.model.backbone import build_vae

    config = composed(sizes)
    torch.manual_seed(0)
    vae = build_vae(config.model).to(device=device, dtype=dtype).eval()
    clip = torch.rand(1, 3, sizes.frames, sizes.height, sizes.width, device=device,
                      dtype=dtype) * 2 - 1
    peak_reset(device)
    with torch.no_grad():
        started = time.perf_counter()
        latents = vae.encode(clip).latent_dist.mode()
        synchronise(device)
        encode_s = time.perf_counter() - started
        encode_peak = peak_gib(device)
        peak_reset(device)
        started = time.perf_counter()
        decoded = vae.decode(latents).sample
        synchronise(device)
        decode_s = time.perf_counter() - started
    return {"latents": list(latents.shape), "decoded": list(decoded.shape),
            "encode_s": round(encode_s, 3), "encode_peak_gib": encode_peak,
            "decode_s": round(decode_s, 3), "decode_peak_gib": peak_gib(device)}


def tiny_training(sizes: Sizes, device) -> dict:
    """Steps per second of the tiny model's stage training step (fwd + bwd + AdamW on
    ``tiny_batch`` 17-frame 64 x 64 latents, float32) on ``device`` and on this machine's CPU."""
    import torch

    from longvie.config import compose
    from longvie.model.backbone import build_transformer
    from longvie.model.controller import DualController, LongVieTransformer

    config = compose(["profile=tiny", "model.pretrained="])
    transformer = config.model.transformer
    batch = sizes.tiny_batch
    shape = (batch, transformer.in_channels, 5, 16, 16)
    rates = {}
    for where in ([torch.device("cpu"), device] if device.type == "cuda" else [device]):
        torch.manual_seed(0)
        base = build_transformer(config.model)
        model = LongVieTransformer(base, DualController(base, config.model.controller.num_layers))
        model.to(where)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        inputs = {"hidden_states": torch.randn(shape, device=where),
                  "timestep": torch.full((batch,), 500.0, device=where),
                  "encoder_hidden_states": torch.randn(batch, config.model.text.max_tokens,
                                                       transformer.text_dim, device=where),
                  "dense": torch.randn(shape, device=where),
                  "sparse": torch.randn(shape, device=where)}

        seconds = timed(optimizer_step(model, optimizer, inputs), where, sizes.tiny_steps)
        rates[where.type] = round(1 / seconds, 2)
    if "cuda" in rates:
        rates["cuda_over_cpu"] = round(rates["cuda"] / rates["cpu"], 1)
    return {"steps_per_s": rates, "batch": batch, "threads_cpu": torch.get_num_threads()}


def table(result: dict) -> str:
    dit = result["dit"]["extrapolated"]
    flops = result["full_model_flops"]
    rows = [
        ("full model PFLOP, forward / fwd+bwd", f"{flops['forward'] / 1e15:.3g} / "
                                                f"{flops['train_controller'] / 1e15:.3g}"),
        ("DiT fwd+bwd, 1 base block (s)", dit["train_s"]["per_block"]),
        ("DiT fwd+bwd, 1 controller layer (s)", dit["train_s"]["per_controller_layer"]),
        ("DiT fwd+bwd, 40 + 12 (s)", dit["train_s"]["full"]),
        ("  with checkpointing (s)", dit["train_s_checkpointing"]["full"]),
        ("DiT fwd+bwd TFLOP/s (counted FLOPs)", dit["train_tflops_per_s"]),
        ("DiT forward, 40 + 12 (s)", dit["forward_s"]["full"]),
        ("largest batch at reduced depth, ckpt", result["batch"]["largest"]),
        ("sampling one clip, 40 + 12 (s)", result["sampling"]["extrapolated_s"]["full"]),
        ("VAE encode / decode (s)", f"{result['vae']['encode_s']} / {result['vae']['decode_s']}"),
        ("tiny training steps/s", result["tiny_training"]["steps_per_s"]),
    ]
    if "peak_gib" in dit:
        rows.insert(4, ("peak GiB 40 + 12, plain / ckpt",
                        (f"{dit['peak_gib']['full']:.1f} / "
                         f"{dit['peak_gib_checkpointing']['full']:.1f}")))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_cell(value)}" for name, value in rows)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_flops_only(sizes: Sizes, out: Path) -> int:
    """The full model's counted FLOPs per clip, on any machine (the meta device)."""
    flops = meta_flops(sizes, *sizes.full_depth)
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
              "command": "bench/gpu_check.py --flops-only", "sizes": asdict(sizes),
              "full_model_flops": flops}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{flops['tokens']} tokens + {flops['history_latents']} history latents: forward "
          f"{flops['forward'] / 1e15:.3f} PFLOP, forward + backward (controller trained) "
          f"{flops['train_controller'] / 1e15:.3f} PFLOP -> {out}")
    return 0


def main(args: list[str]) -> int:
    import torch

    dry, flops_only = "--dry-run" in args, "--flops-only" in args
    args = [a for a in args if a not in ("--dry-run", "--flops-only")]
    suffix = "_dry_run" if dry else "_flops" if flops_only else ""
    out_text, _ = take_option(args, "out", f"bench/results/gpu_check{suffix}.json")
    sizes = DRY if dry else REAL
    if flops_only:
        return write_flops_only(sizes, ROOT / out_text)
    if not dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; --dry-run runs the toy sizes on the CPU",
              file=sys.stderr)
        return 2
    device = torch.device("cpu" if dry else "cuda")
    dtype = getattr(torch, sizes.dtype)
    started = time.perf_counter()
    result: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"bench/gpu_check.py{' --dry-run' if dry else ''}",
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine()),
        "torch": torch.__version__, "sizes": asdict(sizes)}
    result["full_model_flops"] = meta_flops(sizes, *sizes.full_depth)
    with torch.autocast("cuda", enabled=False) if device.type == "cuda" else nullcontext():
        for name, measure in (("dit", dit_cost), ("batch", largest_batch),
                              ("sampling", sampling_cost), ("vae", vae_cost)):
            part_started = time.perf_counter()
            result[name] = measure(sizes, device, dtype)
            result[name]["seconds"] = round(time.perf_counter() - part_started, 1)
            print(f"gpu_check: {name} done in {result[name]['seconds']} s", flush=True)
    result["tiny_training"] = tiny_training(sizes, device)
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = ROOT / out_text
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"-> {out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
