"""The pixel protocol: a student that trains an image encoder on pixels.

When a synthetic set stores images as pixels (``image_kind == "pixels"``) the
student cannot be a head on frozen features: it must learn an image encoder
from the pixels themselves, as in the published pixel-space setting of VLDD.
:class:`PixelStudent` is the feature :class:`~hypervldd.eval.student.Student`
(same image and text heads, feature scale, clipping, lift, distance,
temperature and symmetric InfoNCE) with an image encoder in front of the image
head:

``pixels [0, 1] -> standardise (CLIP mean/std) -> [augment, training only] ->
backbone -> image head -> ... -> lift``; text is unchanged (a head on frozen text
features).

The backbone is the small ConvNet of the dataset-distillation literature
(``depth`` blocks of 3x3 conv, instance norm, ReLU, 2x2 average pooling, then
flatten) or an open_clip image tower (``"open_clip:<arch>"``, randomly
initialised or loaded from a local checkpoint; inputs are resized to its input
size). Augmentation is the DSA-style :class:`~hypervldd.data.augment.DiffAugment`
with parameters drawn from the student's generator, so a seed reproduces a
student bit for bit on CPU.

Everything else follows the :class:`~hypervldd.eval.protocol.EvalProtocol`:
epochs, batch size, optimiser and schedule, seeds, soft targets, learned step
sizes (applied to the heads), and checkpoint selection with its label.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_finite
from ..data.augment import DiffAugment
from .metrics import DEFAULT_KS, retrieval_metrics
from .protocol import EvalProtocol, PixelStudentConfig, StudentConfig
from .seeds import Result, _learned_settings, _run_seeds, _selection_data
from .student import Student, _param_groups, _train_epochs, symmetric_infonce

__all__ = [
    "PixelSet",
    "as_pixel_set",
    "ConvNet",
    "OpenCLIPBackbone",
    "build_backbone",
    "PixelStudent",
    "train_pixel_student",
    "score_pixel_student",
    "evaluate_pixels",
    "is_pixel_data",
    "CLIP_MEAN",
    "CLIP_STD",
]

#: Standardisation of [0, 1] pixels (OpenAI CLIP statistics), for every backbone.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# -- data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PixelSet:
    """Images as pixels ``(N_img, C, H, W)`` in [0, 1], text ``(N_txt, D_t)``, ``txt2img``.

    The pixel counterpart of :class:`~hypervldd.eval.features.FeatureSet`: caption
    ``t`` describes image ``txt2img[t]``; training pairs are caption-level.
    """

    images: torch.Tensor
    text: torch.Tensor
    txt2img: torch.Tensor

    def __post_init__(self) -> None:
        img, txt = self.images, self.text
        if not isinstance(img, torch.Tensor) or not img.is_floating_point() or img.dim() != 4:
            raise ValueError(
                f"images must be a floating-point (N_img, C, H, W) tensor, got "
                f"{getattr(img, 'dtype', type(img).__name__)} {tuple(getattr(img, 'shape', ()))}"
            )
        if not isinstance(txt, torch.Tensor) or not txt.is_floating_point() or txt.dim() != 2:
            raise ValueError("text must be a floating-point (N_txt, D_t) tensor")
        if img.shape[0] == 0 or txt.shape[0] == 0:
            raise ValueError(f"empty set: {img.shape[0]} image(s), {txt.shape[0]} caption(s)")
        idx = torch.as_tensor(self.txt2img)
        if idx.is_floating_point() or idx.dtype == torch.bool or idx.shape != (txt.shape[0],):
            raise ValueError(f"txt2img must be an integer tensor of shape ({txt.shape[0]},)")
        idx = idx.to(torch.int64)
        if int(idx.min()) < 0 or int(idx.max()) >= img.shape[0]:
            raise ValueError(f"txt2img values must lie in [0, {img.shape[0]})")
        if bool((torch.bincount(idx, minlength=img.shape[0]) == 0).any()):
            raise ValueError("every image needs at least one caption in txt2img")
        check_finite(img, "images")
        check_finite(txt, "text")
        object.__setattr__(self, "txt2img", idx)

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]


_IMAGES = ("images", "image", "pixels")
_TEXTS = ("text", "texts", "text_features")
_INDEX = ("txt2img", "caption_to_image")


def _get(obj: Any, names: tuple[str, ...]) -> Any:
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if v is not None:
            return v
    return None


def as_pixel_set(obj: Any, name: str = "pixels") -> PixelSet:
    """Adapt a :class:`PixelSet`, a tuple ``(images, text, txt2img)`` or an object/dict."""
    if isinstance(obj, PixelSet):
        return obj
    if isinstance(obj, (tuple, list)):
        if len(obj) != 3:
            raise ValueError(f"{name} as a tuple must be (images, text, txt2img)")
        return PixelSet(torch.as_tensor(obj[0]), torch.as_tensor(obj[1]), torch.as_tensor(obj[2]))
    img, txt, idx = _get(obj, _IMAGES), _get(obj, _TEXTS), _get(obj, _INDEX)
    if img is None or txt is None or idx is None:
        raise TypeError(
            f"{name} must be a PixelSet, an (images, text, txt2img) tuple, or an object with "
            f"images, text and txt2img; got {type(obj).__name__}"
        )
    return PixelSet(torch.as_tensor(img), torch.as_tensor(txt), torch.as_tensor(idx))


def is_pixel_data(obj: Any) -> bool:
    """Whether ``obj`` is training data with pixel images (dispatch of ``evaluate``)."""
    if isinstance(obj, PixelSet) or getattr(obj, "image_kind", None) == "pixels":
        return True
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], torch.Tensor):
        return obj[0].dim() == 4
    return False


@dataclass(frozen=True)
class _PixelPairs:
    images: torch.Tensor  # (N_img, C, H, W)
    image_index: torch.Tensor  # (M,) image of each training pair
    text: torch.Tensor  # (M, D_t)
    similarity: torch.Tensor | None = None
    group: torch.Tensor | None = None
    lr_image: float | None = None
    lr_text: float | None = None
    storage_floats: int | None = None


def _pixel_pairs(obj: Any) -> _PixelPairs:
    if hasattr(obj, "similarity_matrix") and getattr(obj, "image_kind", None) == "pixels":
        lrs = getattr(obj, "learned_lrs", None) or {}
        m = int(obj.image.shape[0])
        return _PixelPairs(
            images=obj.image.float(),
            image_index=torch.arange(m),
            text=obj.text.float(),
            similarity=obj.similarity_matrix(),
            lr_image=float(lrs["image"]) if "image" in lrs else None,
            lr_text=float(lrs["text"]) if "text" in lrs else None,
            storage_floats=int(obj.storage_floats()),
        )
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        img, txt = torch.as_tensor(obj[0]), torch.as_tensor(obj[1])
        if img.dim() < 1 or txt.dim() < 1 or txt.shape[0] != img.shape[0]:
            raise ValueError("train_pairs images and text must hold the same number of pairs")
        PixelSet(img, txt, torch.arange(img.shape[0]))  # validates shapes and values
        return _PixelPairs(img.float(), torch.arange(img.shape[0]), txt.float())
    ps = as_pixel_set(obj, "train_pairs")
    return _PixelPairs(ps.images.float(), ps.txt2img, ps.text.float(), group=ps.txt2img)


# -- backbones -----------------------------------------------------------------------
def _kaiming_uniform(t: torch.Tensor, fan_in: int, generator: torch.Generator) -> None:
    # PyTorch's default conv/linear init (kaiming_uniform with a = sqrt(5) gives
    # bound 1/sqrt(fan_in)), drawn from our generator.
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        t.uniform_(-bound, bound, generator=generator)


class ConvNet(nn.Module):
    """``(N, C, H, W) -> (N, width * (H / 2^depth) * (W / 2^depth))``.

    ``depth`` blocks of conv 3x3 (``width`` channels, padding 1), instance norm
    (affine, via ``GroupNorm(width, width)``), ReLU, 2x2 average pooling; then
    flatten (the ConvNet of Zhao et al. and Cazenavette et al.).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        width: int,
        depth: int,
        norm: str,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        if h >> depth < 1 or w >> depth < 1:
            raise ValueError(
                f"images of {h}x{w} pixels are too small for a depth-{depth} ConvNet (each "
                "block halves the side); lower pixel.depth"
            )
        layers: list[nn.Module] = []
        for i in range(depth):
            conv = nn.Conv2d(c if i == 0 else width, width, 3, padding=1)
            fan_in = conv.in_channels * 9
            _kaiming_uniform(conv.weight, fan_in, generator)
            _kaiming_uniform(conv.bias, fan_in, generator)
            layers.append(conv)
            if norm == "instance":
                layers.append(nn.GroupNorm(width, width, affine=True))
            layers += [nn.ReLU(), nn.AvgPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.out_dim = width * (h >> depth) * (w >> depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


class OpenCLIPBackbone(nn.Module):
    """The image tower of an open_clip architecture; inputs resized to its size.

    Randomly initialised from ``generator`` (through a forked global RNG, since
    open_clip draws from it) or loaded from a local ``checkpoint`` (a full
    open_clip state dict, ``.safetensors`` or a torch file read with
    ``weights_only=True``). Nothing is downloaded.
    """

    def __init__(
        self, arch: str, checkpoint: str | os.PathLike | None, generator: torch.Generator
    ) -> None:
        super().__init__()
        import open_clip

        if arch not in open_clip.list_models():
            raise ValueError(
                f"pixel.backbone open_clip:{arch}: not an open_clip architecture "
                "(see open_clip.list_models())"
            )
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.visual = _vision_tower(open_clip, arch)
        if checkpoint is not None:
            path = Path(checkpoint)
            if not path.is_file():
                raise FileNotFoundError(f"pixel.checkpoint not found: {path}")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
                state = state.get("state_dict", state)
            state = {k.removeprefix("module."): v for k, v in state.items()}
            # A full open_clip state dict: keep the image tower's part.
            if any(k.startswith("visual.") for k in state):
                state = {
                    k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")
                }
            self.visual.load_state_dict(state)
        size = getattr(self.visual, "image_size", 224)
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        out = getattr(self.visual, "output_dim", None)
        if out is None:
            with torch.no_grad():
                out = self.visual(torch.zeros(1, 3, *self.size)).shape[-1]
        self.out_dim = int(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.visual(x)


def _vision_tower(open_clip: Any, arch: str) -> nn.Module:
    # Only the image tower: building the whole model (text tower, 49k-token
    # embedding) costs about 10x more and is discarded.
    cfg = open_clip.get_model_config(arch)
    try:
        from open_clip.model import _build_vision_tower

        return _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"])
    except (ImportError, KeyError, TypeError):  # other open_clip versions
        return open_clip.create_model(arch, pretrained=None, device="cpu").visual


def build_backbone(
    config: PixelStudentConfig, image_shape: tuple[int, int, int], generator: torch.Generator
) -> nn.Module:
    """The image encoder named by ``config.backbone``; has an ``out_dim`` attribute."""
    if config.backbone == "convnet":
        return ConvNet(image_shape, int(config.width), int(config.depth), config.norm, generator)
    arch = config.backbone.split(":", 1)[1]
    if image_shape[0] != 3:
        raise ValueError(f"open_clip backbones take RGB images, got {image_shape[0]} channel(s)")
    return OpenCLIPBackbone(arch, config.checkpoint, generator)


# -- the student -----------------------------------------------------------------------
class PixelStudent(Student):
    """A :class:`Student` whose image side is ``backbone -> image head`` on pixels.

    Args:
        image_shape: ``(C, H, W)`` of the pixels.
        text_dim: width of the frozen text features.
        config: the head/manifold :class:`StudentConfig`.
        pixel: the :class:`PixelStudentConfig` (backbone, augmentation).
        generator: source of every initial weight.
        trainable: head parts that train (``EvalProtocol.trainable``); the backbone
            trains when ``pixel.train_backbone``.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        text_dim: int,
        config: StudentConfig,
        pixel: PixelStudentConfig,
        generator: torch.Generator,
        trainable: tuple[str, ...] = ("image_head", "text_head"),
    ) -> None:
        backbone = build_backbone(pixel, image_shape, generator)
        super().__init__(backbone.out_dim, text_dim, config, generator, trainable)
        self.pixel = pixel
        self.backbone = backbone
        self.backbone.requires_grad_(bool(pixel.train_backbone))
        c = image_shape[0]
        mean = torch.tensor(CLIP_MEAN[:c] if c == 3 else [0.5] * c).view(1, c, 1, 1)
        std = torch.tensor(CLIP_STD[:c] if c == 3 else [0.25] * c).view(1, c, 1, 1)
        self.register_buffer("pixel_mean", mean)
        self.register_buffer("pixel_std", std)
        self.augment = DiffAugment(ops=pixel.augment) if pixel.augment else None

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> standardised pixels (where the augmentation acts, as in DSA)."""
        x = x.to(self.log_scale.dtype)
        return (x - self.pixel_mean) / self.pixel_std

    def image_tangent(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Pixels ``(N, C, H, W)`` -> tangent vectors ``(N, width)``.

        With a ``generator`` (training), a fresh augmentation is drawn from it.
        """
        x = self.standardise(x)
        if generator is not None and self.augment is not None:
            x = self.augment(x, generator=generator)
        return super().image_tangent(self.backbone(x))


def train_pixel_student(
    student: PixelStudent,
    images: torch.Tensor,
    text: torch.Tensor,
    protocol: EvalProtocol,
    generator: torch.Generator,
    *,
    image_index: torch.Tensor | None = None,
    similarity: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
    lr_image: float | None = None,
    lr_text: float | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> list[float]:
    """Train on pairs ``(images[image_index[i]], text[i])`` for ``protocol.epochs``.

    Same loop as :func:`~hypervldd.eval.student.train_student` (batch order,
    schedule, targets, NaN stop), plus a fresh augmentation per batch drawn from
    ``generator``.

    Returns:
        The mean training loss of each epoch.
    """
    m = text.shape[0]
    if image_index is None:
        image_index = torch.arange(images.shape[0])
    if image_index.shape != (m,):
        raise ValueError(f"image_index must have shape ({m},), got {tuple(image_index.shape)}")
    groups = _param_groups(
        student,
        protocol,
        lr_image,
        lr_text,
        backbone=student.backbone,
        backbone_lr=student.pixel.backbone_lr,
        what="pixel student",
    )

    def batch_loss(idx: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        img = student.lift(student.image_tangent(images[image_index[idx]], generator))
        txt = student.encode_text(text[idx])
        return symmetric_infonce(student.logits(img, txt), targets)

    return _train_epochs(
        student,
        groups,
        m,
        protocol,
        generator,
        batch_loss,
        similarity=similarity,
        group=group,
        on_epoch=on_epoch,
        what="pixel student",
        hint="lower the learning rates",
    )


@torch.no_grad()
def score_pixel_student(
    student: PixelStudent, data: Any, *, ks: Sequence[int] = DEFAULT_KS, chunk: int = 512
) -> dict[str, float]:
    """Retrieval metrics of ``student`` on a :class:`PixelSet` (no augmentation)."""
    ps = as_pixel_set(data, "test")
    student.eval()
    img = torch.cat(
        [student.encode_image(ps.images[i : i + chunk]) for i in range(0, ps.num_images, chunk)]
    )
    txt = torch.cat(
        [student.encode_text(ps.text[i : i + 8192]) for i in range(0, ps.text.shape[0], 8192)]
    )
    return retrieval_metrics(img, txt, ps.txt2img, student.retrieval_score, ks=ks)


def evaluate_pixels(
    train_pairs: Any,
    test: Any,
    protocol: EvalProtocol | None = None,
    *,
    val: Any = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> Result:
    """Train one pixel student per seed on ``train_pairs``; report recall on ``test``.

    Args:
        train_pairs: a ``SyntheticSet`` with ``image_kind == "pixels"``, a
            :class:`PixelSet` of real data (all caption pairs; captions of one
            image are mutual positives), or ``(images (M, C, H, W), text (M, D_t))``.
        test: a :class:`PixelSet` (or adaptable) of the test split.
        protocol: the :class:`EvalProtocol`; its ``pixel`` field names the backbone.
        val: validation :class:`PixelSet`, required for ``selection == "validation"``.

    Returns:
        A :class:`~hypervldd.eval.evaluate.Result` labelled like the feature one.
    """
    protocol = protocol or EvalProtocol()
    if not isinstance(protocol, EvalProtocol):
        raise TypeError(f"protocol must be an EvalProtocol, got {type(protocol).__name__}")
    t0 = time.perf_counter()
    test_set = as_pixel_set(test, "test")
    pairs = _pixel_pairs(train_pairs)
    if pairs.images.shape[1:] != test_set.images.shape[1:]:
        raise ValueError(
            f"train images are {tuple(pairs.images.shape[1:])} but test images are "
            f"{tuple(test_set.images.shape[1:])}; resize one of them"
        )
    if pairs.text.shape[1] != test_set.text.shape[1]:
        raise ValueError(
            f"text widths differ: train {pairs.text.shape[1]}, test {test_set.text.shape[1]}"
        )
    val_set = _selection_data(protocol, val, "val", as_pixel_set)
    similarity, lr_image, lr_text = _learned_settings(pairs, protocol)
    shape = tuple(int(s) for s in pairs.images.shape[1:])

    def make(gen: torch.Generator) -> PixelStudent:
        return PixelStudent(
            shape, pairs.text.shape[1], protocol.student, protocol.pixel, gen, protocol.trainable
        )

    def fit(
        student: PixelStudent, gen: torch.Generator, on_epoch: Callable[[int], None]
    ) -> list[float]:
        return train_pixel_student(
            student,
            pairs.images,
            pairs.text,
            protocol,
            gen,
            image_index=pairs.image_index,
            similarity=similarity,
            group=pairs.group,
            lr_image=lr_image,
            lr_text=lr_text,
            on_epoch=on_epoch,
        )

    return _run_seeds(
        protocol,
        make,
        fit,
        lambda student, data: score_pixel_student(student, data, ks=ks),
        test_set,
        select_on={"validation": val_set, "test": test_set}.get(protocol.selection),
        n_train_pairs=int(pairs.text.shape[0]),
        storage_floats=pairs.storage_floats,
        t0=t0,
    )
