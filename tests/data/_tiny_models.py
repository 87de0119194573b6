"""Tiny randomly initialised encoders saved the way users keep real ones (built per test)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

WORDS = "a an the of red green blue square picture sample photo first second x y".split()


def save_timm(folder: Path, name: str = "resnet10t") -> Path:
    """A timm model's state dict as ``folder/<name>.pth`` (classifier included, as released)."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return path


def save_bert(folder: Path, *, sentence_transformers: bool = False, pooling: str = "cls") -> Path:
    """A 1-layer BERT with a word-piece vocabulary of the test captions' words.

    With ``sentence_transformers`` the folder gets that library's layout:
    ``modules.json`` (Transformer, Pooling, Normalize), ``1_Pooling/config.json`` and
    ``sentence_bert_config.json``.
    """
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    digits = [str(d) for d in range(10)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *digits]
    vocab += [f"##{d}" for d in digits]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    transformers.BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    if sentence_transformers:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps(
                {
                    "word_embedding_dimension": 16,
                    "pooling_mode_cls_token": pooling == "cls",
                    "pooling_mode_mean_tokens": pooling == "mean",
                }
            )
        )
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12}))
    return folder


def save_vit(folder: Path) -> Path:
    """A 1-layer ViT on 32-px images with its image processor."""
    import transformers

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=16,
    )
    transformers.ViTModel(cfg).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


TINY_CLIP = "hvd-test-tiny-clip-formats"


def save_open_clip(folder: Path) -> Path:
    """A registered tiny open_clip architecture (``TINY_CLIP``) and its checkpoint file."""
    import open_clip

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 16,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 12,
            "vocab_size": 49408,
            "width": 16,
            "heads": 2,
            "layers": 1,
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    path = folder / "open_clip_model.pt"
    torch.save(model.state_dict(), path)
    return path
