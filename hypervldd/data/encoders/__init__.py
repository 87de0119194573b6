"""Frozen image and text encoders behind one interface, loaded only from local files.

Every encoder has an ``id`` (a readable name), an output ``dim``, and a
:meth:`~FrozenEncoder.fingerprint` that hashes its weights (the state dict's
names, dtypes, shapes and bytes), its preprocessing and its pooling. The feature
cache is keyed by that fingerprint, so features made with other weights or other
preprocessing are never reused.

* :class:`ImageEncoder` - ``encode_images(images) -> (B, dim)`` float32.
* :class:`TextEncoder` - ``encode_texts(texts) -> (B, dim)`` float32.

Implementations: :func:`efficientnet_lite0` (ImageNet EfficientNet-Lite0, 1280-d,
inputs in [-1, 1]); :func:`minilm_l6_v2` (all-MiniLM-L6-v2, 384-d, mean pooling +
L2 normalisation as sentence-transformers does); :func:`load_open_clip` (both
towers of an open_clip model from a local checkpoint); :class:`TimmImageEncoder`
and :class:`HFTextEncoder` for other local timm / Hugging Face checkpoints.

Nothing here downloads: the loaders set ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` and pass ``local_files_only`` where the library takes it;
an absent checkpoint raises ``FileNotFoundError`` saying what to provide.

The families live in modules named for them: ``preprocess`` (:class:`ImagePreprocess`,
:class:`TextPreprocess`), ``base`` (the interfaces, the fingerprint, the offline
switch), ``efficientnet``, ``timm_image``, ``hf_image``, ``hf_text`` (MiniLM and other
Hugging Face text models) and ``openclip``. Every name is importable from here.
"""

from __future__ import annotations

from .base import _ENCODER_VERSION as _ENCODER_VERSION
from .base import FrozenEncoder, ImageEncoder, TextEncoder, state_dict_digest
from .base import _set_offline as _set_offline
from .efficientnet import EfficientNetLite0Encoder, efficientnet_lite0
from .efficientnet import _efficientnet_lite0_weights as _efficientnet_lite0_weights
from .hf_image import HFImageEncoder
from .hf_text import HFTextEncoder, minilm_l6_v2
from .openclip import OpenCLIPImageEncoder, OpenCLIPTextEncoder, load_open_clip
from .preprocess import ImagePreprocess, TextPreprocess
from .timm_image import TimmImageEncoder

__all__ = [
    "ImagePreprocess",
    "TextPreprocess",
    "FrozenEncoder",
    "ImageEncoder",
    "TextEncoder",
    "EfficientNetLite0Encoder",
    "TimmImageEncoder",
    "HFTextEncoder",
    "HFImageEncoder",
    "OpenCLIPImageEncoder",
    "OpenCLIPTextEncoder",
    "efficientnet_lite0",
    "minilm_l6_v2",
    "load_open_clip",
    "state_dict_digest",
]
