"""Project copies, random-weight models and Dagster resources the test files build on."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Real videos no one here made: Debian's opencv-doc package (`make test-assets` installs it).
OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
# An H.264 MP4 with B-frames whose decoder returns frames out of presentation order.
OPENCV_BOX_MP4 = Path("/usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz")


def copy_project(source: Path, target: Path, parts: tuple[str, ...] = ("data",)) -> Path:
    """A project root at ``target`` with copies of ``source``'s ``parts`` (folders or files)."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for part in parts:
        copy = shutil.copytree if (source / part).is_dir() else shutil.copy2
        copy(source / part, target / part)
    return target


def random_stage3(root: Path, config, name: str, seed: int) -> Path:
    """A random-weight stage-3 folder (base parts copied in) at models/<name>/model."""
    import torch

    from longvie.model.backbone import build_transformer, build_vae
    from longvie.model.controller import DualController, LongVieTransformer
    from longvie.model.folder import save_stage_model
    from longvie.model.text import CaptionTextEncoder, CaptionVocabulary

    torch.manual_seed(seed)
    base = root / "models" / f"{name}_base"
    transformer = build_transformer(config.model)
    transformer.save_pretrained(base / "transformer")
    build_vae(config.model).save_pretrained(base / "vae")
    CaptionTextEncoder(CaptionVocabulary.build(["a red box"]), 32, 16, 1, 2).save_pretrained(
        base / "text_encoder")
    model = LongVieTransformer(transformer, DualController(transformer, 1))
    folder = root / "models" / name / "model"
    return save_stage_model(folder, "stage3", model, str(base), base_changed=False)


def resources_with(longvie) -> dict:
    """The code location's resources with this config resource (DVC and MLflow as defined)."""
    from orchestration.resources import DvcResource, MlflowResource

    return {"longvie": longvie, "dvc": DvcResource(), "mlflow": MlflowResource()}
