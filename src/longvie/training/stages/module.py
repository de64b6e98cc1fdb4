"""Controller stages 1, 2 and 3: one LightningModule, three settings.

Every stage trains the same flow-matching step of the I2V DiT with the dual controller, on
cached latents, starting from the previous stage's folder (stage 1 from the base, with a fresh
zero-initialised controller). What differs is switched on by the stage's :class:`StageSpec`:

- stage 1 degrades the dense control in the last third of its steps (features scaled, depth
  blurred and re-mixed across scales, then encoded again);
- stage 2 replaces the conditioning frame by T(I) with p = 0.2 (VAE round trips, or a partial
  regeneration by the model itself, plus a colour drift); a sparse control coloured by the first
  frame (``model.sparse_control=first_frame``) is splatted again from T(I), as generation
  splats it from the last generated frame;
- stage 3 keeps stage 2's T(I), prepends history latents of the preceding clip (themselves
  degraded by T) and adds the boundary weights and the L_deg / L_gt / L_cons terms; the base's
  self-attention trains too, at a lower learning rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import torch

from longvie.model.backbone import (
    LatentCodec,
    condition_of,
    control_input,
    history_input,
    i2v_input,
    unconditioned_input,
)
from longvie.model.degradations import (
    degrade_dense_video,
    degrade_first_frame,
    degrade_latent_video,
    sample_dense_feature_scale,
)
from longvie.model.flow_sampler import renoise_and_denoise
from longvie.model.losses import boundary_weights, stage3_loss, weighted_flow_matching_loss
from longvie.training.clips import first_frame_controls
from longvie.training.draws import StepDraws, shard_start, step_draws
from longvie.training.flow import noisy_and_target, sample_sigmas
from longvie.training.stages.data import StageInputs


@dataclass(frozen=True)
class StageSpec:
    number: int
    previous: str  # the step whose model folder this stage starts from
    dense_degradation: bool = False
    first_frame_degradation: bool = False
    history: bool = False
    trains_base_attention: bool = False
    trains_base: bool = False  # the whole base DiT beside the controller
    label: str = ""  # the step's name when it is not ``stage<number>``

    @property
    def name(self) -> str:
        return self.label or f"stage{self.number}"

    def inputs(self, condition_encoding: str, sparse_control: str = "point_map") -> StageInputs:
        return StageInputs(
            depth_video=self.dense_degradation,
            # The joint condition encoding needs the pixel frame even for a clean condition.
            first_frame=self.first_frame_degradation or condition_encoding == "joint",
            previous_latents=self.history,
            # A sparse control coloured by the first frame is splatted again from T(I).
            tracks=self.first_frame_degradation and sparse_control == "first_frame",
        )


STAGES = {
    "1": StageSpec(1, "base", dense_degradation=True),
    "2": StageSpec(2, "stage1", first_frame_degradation=True),
    "3": StageSpec(3, "stage2", first_frame_degradation=True, history=True,
                   trains_base_attention=True),
}

# ``longvie pretrain``'s control part: the base and the controller together, from the base.
PRETRAIN_CONTROL = StageSpec(0, "base", trains_base=True, label="pretrain_control")


@dataclass
class FlowBatch:
    """One batch as the flow-matching step sees it (latents (B, 16, F, h, w))."""

    latents: torch.Tensor
    condition: torch.Tensor  # the I2V condition latents: frame 0 known, zeros after
    text: torch.Tensor
    dense: torch.Tensor | None = None
    sparse: torch.Tensor | None = None
    dense_scale: torch.Tensor | None = None
    history: torch.Tensor | None = None


def flow_matching_terms(transformer, batch: FlowBatch, generators: Sequence[torch.Generator],
                        shift: float, stage3_weights: dict[str, float] | None = None
                        ) -> dict[str, torch.Tensor]:
    """The loss terms of one batch (one generator per sample); ``stage3_weights`` adds stage 3's
    boundary weights + terms.

    Without them: ``{"total": plain flow-matching MSE}``. With them ẑ_0, the clean first latent
    the prediction implies (x_t - s v), is tied to the degraded condition (low frequencies), the
    ground truth (high frequencies) and the end of the history (no history: that term is 0).

    The end of the history, z_H[-1], is taken as the condition latent z~_I: clips overlap by one
    frame, so the last history frame *is* the conditioning frame (at generation time both are
    the last generated frame). The history's own last latent is no substitute: the causal VAE
    packs four frames into it, while ẑ_0 encodes one frame alone, and pulling one towards the
    other wrecked frame 0 (held-out frame-0 loss 0.03 -> 3.3 in a first run).
    """
    latents = batch.latents
    sigmas = sample_sigmas(generators, shift)
    noisy, target, timesteps = noisy_and_target(latents, sigmas, generators)
    prediction = transformer(
        i2v_input(noisy, batch.condition), timesteps, batch.text,
        dense=None if batch.dense is None else control_input(batch.dense),
        sparse=None if batch.sparse is None else control_input(batch.sparse),
        history=None if batch.history is None else history_input(batch.history),
        dense_scale=batch.dense_scale,
    )
    frames = latents.shape[2]
    if stage3_weights is None:
        return {"total": weighted_flow_matching_loss(prediction, target,
                                                     torch.ones(frames).to(prediction))}
    diffusion = weighted_flow_matching_loss(prediction, target,
                                            boundary_weights(frames).to(prediction))
    level = sigmas.to(prediction).view(-1, 1, 1, 1)
    first = noisy[:, :, 0] - level * prediction[:, :, 0]
    end_of_history = batch.condition[:, :, 0] if batch.history is not None else first.detach()
    return stage3_loss(diffusion, first, batch.condition[:, :, 0], latents[:, :, 0],
                       end_of_history, **stage3_weights)


def per_sample(degrade, generators: Sequence[torch.Generator], *tensors: torch.Tensor
               ) -> torch.Tensor:
    """``degrade(*rows, generator)`` applied to each sample with its own generator, stacked."""
    return torch.cat([degrade(*(t[i:i + 1] for t in tensors), g)
                      for i, g in enumerate(generators)])


@dataclass
class FrozenParts:
    """The text encoder and VAE a stage uses but never trains. Kept out of the module's children
    so they stay in eval mode and out of the checkpoints; moved with the module's device."""

    text_encoder: torch.nn.Module
    vae: torch.nn.Module

    def to(self, device: torch.device) -> None:
        self.text_encoder.to(device).eval().requires_grad_(False)
        self.vae.to(device).eval().requires_grad_(False)


class ControllerModule(L.LightningModule):
    """The controller stages' training step; checkpoints hold the trained weights only."""

    def __init__(self, spec: StageSpec, settings, transformer, text_encoder, vae, shift: float,
                 caption_dropout: float, seed: int, condition_encoding: str,
                 sparse_control: str = "point_map") -> None:
        super().__init__()
        self.spec, self.settings = spec, settings
        self.transformer = transformer
        self.frozen = FrozenParts(text_encoder, vae)
        self.frozen.to(torch.device("cpu"))
        self.codec = LatentCodec(vae)
        self.shift, self.caption_dropout, self.seed = shift, caption_dropout, seed
        self.condition_encoding, self.sparse_control = condition_encoding, sparse_control
        self.strict_loading = False  # frozen weights come from the previous stage, not the ckpt
        self.losses: list[float] = []
        self._configure_trainable()

    @property
    def text_encoder(self) -> torch.nn.Module:
        return self.frozen.text_encoder

    def on_fit_start(self) -> None:
        self.frozen.to(self.device)

    def _configure_trainable(self) -> None:
        from longvie.model.controller import freeze_base, unfreeze_base_self_attention

        if self.spec.trains_base:
            self.transformer.base.requires_grad_(True)
        elif self.spec.trains_base_attention:
            unfreeze_base_self_attention(self.transformer)
        else:
            freeze_base(self.transformer)
        self.transformer.controller.requires_grad_(True)

    def trainable_names(self) -> set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    # --- the step -----------------------------------------------------------------------------

    def step_draws(self, step: int, count: int) -> StepDraws:
        """The draws of this process's ``count`` samples of ``step`` (rank-independent)."""
        return step_draws(self.seed, step, shard_start(self, count), count,
                          stream=self.spec.number)

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        terms, flow = self.step_terms(batch, self.global_step)
        loss = terms["total"]
        self.losses.append(float(loss.detach()))
        logged = {f"{self.spec.name}/{k}": v.detach() for k, v in terms.items() if k != "total"}
        logged[f"{self.spec.name}/loss"] = loss.detach()
        if self.spec.history:
            logged[f"{self.spec.name}/history_latents"] = float(
                0 if flow.history is None else flow.history.shape[2])
        self.log_dict(logged, prog_bar=True, batch_size=flow.latents.shape[0])
        return loss

    def step_terms(self, batch: dict, step: int) -> tuple[dict[str, torch.Tensor], FlowBatch]:
        """The loss terms of optimizer step ``step`` (a pure function of the batch and step)."""
        draws = self.step_draws(step, batch["video"].shape[0])
        flow = self.flow_batch(batch, step, draws)
        weights = None
        if self.spec.history:
            weights = {"w_deg": self.settings.w_deg, "w_gt": self.settings.w_gt,
                       "w_cons": self.settings.w_cons}
        return (flow_matching_terms(self.transformer, flow, draws.samples, self.shift, weights),
                flow)

    def flow_batch(self, batch: dict, step: int, draws: StepDraws) -> FlowBatch:
        """The batch with this stage's degradations applied. Each sample draws from its own
        generator in ``draws`` (so a batch split over ranks draws the same); the history length
        is one draw for the whole batch."""
        latents, dense = batch["video"], batch["dense"]
        samples = draws.samples
        captions = ["" if float(torch.rand(1, generator=g)) < self.caption_dropout else c
                    for c, g in zip(batch["caption"], samples, strict=True)]
        with torch.no_grad():
            text = self.text_encoder.encode(captions)
        condition = self.clean_condition(batch)
        dense_scale = None
        if self.spec.dense_degradation and step >= self.degrade_from_step():
            settings = self.settings
            dense_scale = torch.cat([
                sample_dense_feature_scale(1, settings.feature_p, settings.feature_low,
                                           settings.feature_high, g) for g in samples])
            dense = per_sample(self.degraded_dense, samples, batch["depth"], dense)
        sparse = batch["sparse"]
        if self.spec.first_frame_degradation:
            condition, sparse = self.degraded_inputs(batch, condition, sparse, samples)
        history = self.history(batch["previous"], draws) if self.spec.history else None
        if self.settings.control_dropout > 0:
            dense, sparse = self.dropped_controls(dense, sparse, samples)
        return FlowBatch(latents, condition, text, dense, sparse, dense_scale, history)

    def dropped_controls(self, dense: torch.Tensor, sparse: torch.Tensor,
                         samples: Sequence[torch.Generator]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both controls zeroed for a ``control_dropout`` share of the samples: the model keeps
        generating from the frame and caption alone, and learns what the controls add."""
        drop = torch.tensor([float(torch.rand(1, generator=g)) < self.settings.control_dropout
                             for g in samples])
        if not bool(drop.any()):
            return dense, sparse
        keep = (~drop).to(dense.dtype).view(-1, 1, 1, 1, 1)
        return dense * keep, sparse * keep

    def degrade_from_step(self) -> int:
        return int(round(self.settings.steps * self.settings.degrade_from_fraction))

    def clean_condition(self, batch: dict) -> torch.Tensor:
        """The cached latent frame 0 (``first_frame`` encoding), or the frame encoded jointly."""
        if self.condition_encoding == "joint":
            return self.encode_condition(batch["first_frame"], batch["video"])
        return condition_of(batch["video"])

    def encode_condition(self, frames: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Condition latents shaped like ``like`` (B, 16, F, h, w) of frames (B, 3, H, W)."""
        pixel_frames = (like.shape[2] - 1) * 4 + 1
        with torch.no_grad():
            return self.codec.condition(frames, pixel_frames, self.condition_encoding)

    # --- stage 1: dense degradation ------------------------------------------------------------

    def degraded_dense(self, depth: torch.Tensor, dense: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
        """Data-level degradation of the depth videos (B, 1, T, H, W) in [0, 1], re-encoded."""
        degraded, applied = degrade_dense_video(depth, self.settings.data_p, generator)
        if not bool(applied.any()):
            return dense
        video = (degraded[applied] * 2 - 1).expand(-1, 3, -1, -1, -1)
        dense = dense.clone()
        with torch.no_grad():
            dense[applied] = self.codec.encode(video).to(dense)
        return dense

    # --- stages 2 and 3: the degraded first frame T(I) -----------------------------------------

    def degraded_inputs(self, batch: dict, condition: torch.Tensor, sparse: torch.Tensor,
                        generators: Sequence[torch.Generator]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample's condition from T(I) (drawn with its own generator); where T changed
        the frame and the batch carries tracks, the sparse control is splatted from T(I) too."""
        conditions, sparses = [], []
        for index, generator in enumerate(generators):
            row = slice(index, index + 1)
            frames, kinds = self.degrade_frames(batch["first_frame"][row], generator)
            row_condition, row_sparse = condition[row], sparse[row]
            if kinds[0] != "none":
                row_condition = self.encode_condition(frames, row_condition)
                if "tracks_xy" in batch:
                    row_sparse = self.splat_sparse(frames, batch, index).to(row_sparse)
            conditions.append(row_condition)
            sparses.append(row_sparse)
        return torch.cat(conditions), torch.cat(sparses)

    def splat_sparse(self, frames: torch.Tensor, batch: dict, index: int) -> torch.Tensor:
        """The sparse control of sample ``index`` coloured by ``frames`` (1, 3, H, W) in
        [-1, 1] instead of its real first frame: (1, 16, F, h, w)."""
        pixels = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        tracks = tuple(batch[key][index].cpu().numpy()
                       for key in ("query_xy", "tracks_xy", "tracks_visible"))
        with torch.no_grad():
            return first_frame_controls(self.codec, pixels.permute(0, 2, 3, 1).cpu().numpy(),
                                        batch["track_depth"][index].cpu().numpy(), tracks)

    def degrade_frames(self, first_frame: torch.Tensor, generator: torch.Generator,
                       p: float | None = None) -> tuple[torch.Tensor, list[str]]:
        codec, settings = self.codec, self.settings

        def encode(image):
            return codec.encode(image.unsqueeze(2))

        def decode(latent):
            return codec.decode(latent)[:, :, 0]

        def regenerate(latent, steps_back, num_steps):
            return renoise_and_denoise(self.unconditional_velocity(latent), latent, steps_back,
                                       num_steps, self.shift, generator)

        return degrade_first_frame(
            first_frame, settings.first_frame_p if p is None else p,
            lambda image: decode(encode(image)), encode, regenerate, decode, generator,
            encoding_share=settings.encoding_share, drift_p=settings.drift_p,
            num_steps=settings.sampling_steps,
        )

    def unconditional_velocity(self, like: torch.Tensor):
        """The model as a text-to-image denoiser with the empty caption (no frame, no control):
        how the generation degradation regenerates a frame with the model itself."""
        text = self.text_encoder.encode([""] * like.shape[0])

        def velocity(x, timesteps):
            return self.transformer(unconditioned_input(x), timesteps, text)

        return velocity

    # --- stage 3: history ----------------------------------------------------------------------

    def history(self, previous: torch.Tensor, draws: StepDraws) -> torch.Tensor | None:
        """The last N_H / 4 latents of the preceding clips, degraded by T; None with p. Whether
        and how long is drawn once for the batch (the history latents are stacked)."""
        settings = self.settings
        if float(torch.rand(1, generator=draws.batch)) < settings.no_history_p:
            return None
        choice = int(torch.randint(len(settings.history_frames), (1,), generator=draws.batch))
        count = settings.history_frames[choice] // 4
        degraded = per_sample(self.degraded_history, draws.samples, previous)
        return degraded[:, :, -count:]

    def degraded_history(self, previous: torch.Tensor, generator: torch.Generator
                         ) -> torch.Tensor:
        settings = self.settings
        degraded, _ = degrade_latent_video(
            previous, settings.first_frame_p, self.round_trip, self.regenerate_video(generator),
            generator, encoding_share=settings.encoding_share, num_steps=settings.sampling_steps,
            max_rounds=settings.history_encoding_rounds)
        return degraded

    def round_trip(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(self.codec.decode(latents))

    def regenerate_video(self, generator: torch.Generator):
        def regenerate(latents, steps_back, num_steps):
            text = self.text_encoder.encode([""] * latents.shape[0])
            condition = condition_of(latents)

            def velocity(x, timesteps):
                return self.transformer(i2v_input(x, condition), timesteps, text)

            return renoise_and_denoise(velocity, latents, steps_back, num_steps, self.shift,
                                       generator)

        return regenerate

    # --- optimisation and checkpoints ----------------------------------------------------------

    def configure_optimizers(self):
        settings = self.settings
        controller = [p for p in self.transformer.controller.parameters() if p.requires_grad]
        groups = [{"params": controller, "lr": settings.learning_rate}]
        if self.spec.trains_base:
            groups.append({"params": list(self.transformer.base.parameters()),
                           "lr": settings.base_learning_rate})
        elif self.spec.trains_base_attention:
            attention = [p for p in self.transformer.base.parameters() if p.requires_grad]
            groups.append({"params": attention, "lr": settings.base_attention_learning_rate})
        return torch.optim.AdamW(groups, weight_decay=settings.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainable = self.trainable_names()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                    if k in trainable}
        checkpoint["longvie_losses"] = list(self.losses)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.losses = [float(v) for v in checkpoint.get("longvie_losses", [])]

