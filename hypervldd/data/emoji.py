"""The built-in ``emoji`` dataset: Unicode emoji rendered from Noto Color Emoji.

Source files (Debian packages, nothing downloaded):

* ``/usr/share/unicode/emoji/emoji-test.txt`` (package ``unicode-data``): every
  emoji with its group, subgroup, status and CLDR name. Only the
  ``fully-qualified`` entries are used (3,655 in Emoji 15.0).
* ``/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf`` (package
  ``fonts-noto-color-emoji``): a CBDT colour bitmap font. Pillow draws it at its
  single bitmap size 109 (glyphs about 136 x 128 px) with ``embedded_color=True``;
  with Pillow's Raqm layout, ZWJ sequences, flags and keycaps become one glyph.

Each emoji is one image with five template captions built from its name and the
group/subgroup it sits in. The hierarchy group > subgroup > emoji > skin-tone
variant is kept as per-image metadata and as a nested dict. Splits are assigned
per *base emoji* (the name without its skin-tone qualifiers), so all skin-tone
variants of one emoji land in the same split.

Rendered images are cached as PNG files under
``<cache_dir>/emoji/<render key>/`` (written atomically); the render key hashes
the two source files, the rendering settings and the Pillow version, so a
change in any of them renders afresh into a new folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont, features
from tqdm.auto import tqdm

from ._io import atomic_write_bytes, default_cache_dir, sha256_file, sha256_json
from .dataset import DEFAULT_SPLIT_FRACTIONS, PairedDataset, assign_splits

__all__ = [
    "EMOJI_TEST_PATH",
    "NOTO_EMOJI_FONT_PATH",
    "EmojiRecord",
    "parse_emoji_test",
    "emoji_captions",
    "render_emoji",
    "emoji_splits",
    "load_emoji",
]

EMOJI_TEST_PATH = Path("/usr/share/unicode/emoji/emoji-test.txt")
NOTO_EMOJI_FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")

# Noto Color Emoji is a bitmap font with one strike; FreeType refuses other sizes.
_FONT_SIZE = 109
# Bumped when rendering or caption templates change, so caches and features follow.
_RENDER_VERSION = 1
_CAPTION_VERSION = 1

_LINE = re.compile(
    r"^(?P<cps>[0-9A-F ]+?)\s*;\s*(?P<status>[a-z-]+)\s*#\s*\S+\s+E(?P<ver>[0-9.]+)\s+(?P<name>.+)$"
)


@dataclass(frozen=True)
class EmojiRecord:
    """One fully-qualified emoji from ``emoji-test.txt``."""

    codepoints: tuple[int, ...]
    name: str
    version: str
    group: str
    subgroup: str
    base_name: str
    skin_tone: str | None

    @property
    def char(self) -> str:
        return "".join(chr(c) for c in self.codepoints)

    @property
    def key(self) -> str:
        """Code points as lower-case hex joined by ``-`` (e.g. ``1f44b-1f3fd``)."""
        return "-".join(f"{c:x}" for c in self.codepoints)


def _missing(path: Path, what: str, package: str, argument: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} not found at {path}. It comes from the Debian package '{package}' "
        f"(sudo apt-get install {package}); or pass {argument}= pointing at a copy."
    )


def _split_skin_tone(name: str) -> tuple[str, str | None]:
    """``"waving hand: medium skin tone"`` -> ``("waving hand", "medium skin tone")``."""
    if ": " not in name:
        return name, None
    head, tail = name.split(": ", 1)
    parts = tail.split(", ")
    tones = [p for p in parts if p.endswith("skin tone")]
    if not tones:
        return name, None
    rest = [p for p in parts if not p.endswith("skin tone")]
    # "kiss: person, person, <tones>" is a variant of "kiss": "person" is the default.
    if all(p == "person" for p in rest):
        rest = []
    base = f"{head}: {', '.join(rest)}" if rest else head
    return base, ", ".join(tones)


def parse_emoji_test(path: str | os.PathLike = EMOJI_TEST_PATH) -> list[EmojiRecord]:
    """Fully-qualified emoji of ``emoji-test.txt``, in file (CLDR) order."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, "emoji-test.txt", "unicode-data", "emoji_test_path")
    group = subgroup = None
    out: list[EmojiRecord] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
                continue
            if line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
                continue
            if not line or line.startswith("#"):
                continue
            m = _LINE.match(line)
            if m is None:
                raise ValueError(f"unrecognised line in {path}: {line!r}")
            if m["status"] != "fully-qualified":
                continue
            if group is None or subgroup is None:
                raise ValueError(f"{path}: emoji line before any group/subgroup header: {line!r}")
            name = m["name"].strip()
            base, tone = _split_skin_tone(name)
            out.append(
                EmojiRecord(
                    codepoints=tuple(int(c, 16) for c in m["cps"].split()),
                    name=name,
                    version=m["ver"],
                    group=group,
                    subgroup=subgroup,
                    base_name=base,
                    skin_tone=tone,
                )
            )
    if not out:
        raise ValueError(f"{path} holds no fully-qualified emoji; is it emoji-test.txt?")
    return out


def _readable(base: str) -> str:
    if base.startswith("flag: "):
        return "flag of " + base[len("flag: ") :]
    if base.startswith("keycap: "):
        return "keycap " + base[len("keycap: ") :]
    return base.replace(": ", " with ")


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def emoji_captions(rec: EmojiRecord) -> list[str]:
    """Five template captions: the name, then with the subgroup and group worked in."""
    thing = _readable(rec.base_name)
    if rec.skin_tone:
        thing = f"{thing} with {rec.skin_tone.replace(', ', ' and ')}"
    sub = rec.subgroup.replace("-", " ")
    grp = rec.group.replace("&", "and").lower()
    return [
        thing,
        f"an emoji of {thing}",
        f"{thing}, {_article(sub)} {sub} emoji",
        f"{_article(grp)} {grp} emoji showing {thing}",
        f"an icon of {thing} from the {sub} subgroup of {grp}",
    ]


def _layout_engine() -> ImageFont.Layout:
    # Without Raqm, multi-code-point emoji (ZWJ sequences, flags) fall apart into
    # several glyphs; render_emoji reports how many did.
    return ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC


def render_emoji(
    text: str,
    font: ImageFont.FreeTypeFont,
    *,
    image_size: int = 128,
    margin: float = 0.06,
    background: tuple[int, int, int] = (255, 255, 255),
) -> tuple[Image.Image, bool]:
    """Render one emoji string to an ``image_size`` square RGB image.

    The glyph is cropped to its alpha bounding box, centred on a square with
    ``margin`` (fraction of the side) on each side, composited over ``background``
    and resized with Lanczos. Returns the image and whether the string was laid
    out as a single glyph (False means the font or layout engine lacks the sequence).
    """
    advance = font.getlength(text)
    single = advance <= 1.5 * font.getlength("\U0001f600")
    w = int(np.ceil(advance)) + 16
    canvas = Image.new("RGBA", (w, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), text, font=font, embedded_color=True)
    bbox = canvas.getchannel("A").getbbox()
    if bbox is None:
        raise ValueError(f"emoji {text!r} rendered as an empty image")
    glyph = canvas.crop(bbox)
    side = int(round(max(glyph.size) / (1.0 - 2.0 * margin)))
    square = Image.new("RGBA", (side, side), (*background, 255))
    square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    out = square.convert("RGB").resize((image_size, image_size), Image.Resampling.LANCZOS)
    return out, single


def _complete_png(data: bytes) -> bool:
    """Whether ``data`` is a whole PNG: structure and every chunk's CRC up to IEND.

    ``verify`` checks the chunks without decoding the pixels (cheaper than decoding),
    which catches truncation and bit rot.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except (OSError, SyntaxError, ValueError, struct.error):
        return False
    return True


def emoji_splits(
    records: Sequence[EmojiRecord],
    fractions: Mapping[str, float] = DEFAULT_SPLIT_FRACTIONS,
    *,
    seed: int = 0,
) -> list[str]:
    """Split per emoji, keyed by (group, subgroup, base name): skin-tone variants stay together."""
    keys = [f"{r.group}\x00{r.subgroup}\x00{r.base_name}" for r in records]
    return assign_splits(keys, fractions, seed=seed)


def _select(n: int, limit: int | None) -> np.ndarray:
    if limit is None or limit >= n:
        return np.arange(n)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    # Evenly spaced over the CLDR order so a small subset still spans the groups.
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def load_emoji(
    *,
    limit: int | None = None,
    groups: Sequence[str] | None = None,
    image_size: int = 128,
    cache_dir: str | os.PathLike | None = None,
    emoji_test_path: str | os.PathLike = EMOJI_TEST_PATH,
    font_path: str | os.PathLike = NOTO_EMOJI_FONT_PATH,
    split_fractions: Mapping[str, float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
    progress: bool = True,
) -> PairedDataset:
    """The built-in emoji dataset (rendered once, then read from the cache).

    Args:
        limit: keep only ``limit`` emoji, evenly spaced over the file order
            (after the ``groups`` filter); ``None`` keeps all.
        groups: keep only these Unicode groups (e.g. ``["Food & Drink"]``).
        image_size: side of the square RGB images, in pixels.
        cache_dir: cache root (default ``$HYPERVLDD_CACHE`` or ``~/.cache/hypervldd``).
        emoji_test_path: ``emoji-test.txt`` (Debian ``unicode-data``).
        font_path: ``NotoColorEmoji.ttf`` (Debian ``fonts-noto-color-emoji``).
        split_fractions: split name -> fraction of base emoji.
        seed: split assignment seed.
        progress: show a tqdm bar while rendering.

    Returns:
        A :class:`PairedDataset` with 5 captions per image; ``metadata`` holds
        ``"hierarchy"`` (group -> subgroup -> base emoji -> list of variant names),
        ``"levels"``, ``"render_seconds"`` and ``"multi_glyph"`` (emoji the font
        could not draw as one glyph); ``image_meta`` holds ``char``, ``codepoints``,
        ``name``, ``group``, ``subgroup``, ``base_name``, ``skin_tone`` and integer
        ``group_index``, ``subgroup_index``, ``base_index``.
    """
    emoji_test_path = Path(emoji_test_path)
    font_path = Path(font_path)
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    records = parse_emoji_test(emoji_test_path)
    if not font_path.is_file():
        raise _missing(font_path, "Noto Color Emoji font", "fonts-noto-color-emoji", "font_path")
    if groups is not None:
        known = list(dict.fromkeys(r.group for r in records))
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise ValueError(f"groups must be among {known}, got unknown {unknown}")
        records = [r for r in records if r.group in set(groups)]
    records = [records[i] for i in _select(len(records), limit)]

    render_key = sha256_json(
        {
            "v": _RENDER_VERSION,
            "emoji_test": sha256_file(emoji_test_path),
            "font": sha256_file(font_path),
            "image_size": image_size,
            "pillow": PIL.__version__,
            "layout": str(_layout_engine()),
        }
    )
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "emoji" / render_key[:20]
    paths = [folder / f"{r.key}.png" for r in records]
    # A cached file that is not a complete PNG (a crash of another tool, a full disk, an
    # edit) is rendered again; each good file is read once here, for its digest too.
    digests: list[str] = [""] * len(paths)
    todo = []
    for i, p in enumerate(paths):
        data = p.read_bytes() if p.is_file() else b""
        if _complete_png(data):
            digests[i] = "sha256:" + hashlib.sha256(data).hexdigest()
        else:
            todo.append(i)
    repaired = sum(1 for i in todo if paths[i].exists())
    multi: list[str] = []
    t0, c0 = time.perf_counter(), time.process_time()
    if todo:
        font = ImageFont.truetype(str(font_path), size=_FONT_SIZE, layout_engine=_layout_engine())
        folder.mkdir(parents=True, exist_ok=True)
        for i in tqdm(todo, desc="render emoji", disable=not progress, unit="img"):
            img, single = render_emoji(records[i].char, font, image_size=image_size)
            if not single:
                multi.append(records[i].name)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            atomic_write_bytes(paths[i], buf.getvalue())
            digests[i] = "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    render_seconds = time.perf_counter() - t0
    render_cpu_seconds = time.process_time() - c0

    groups_seen = list(dict.fromkeys(r.group for r in records))
    subgroups_seen = list(dict.fromkeys((r.group, r.subgroup) for r in records))
    bases_seen = list(dict.fromkeys((r.group, r.subgroup, r.base_name) for r in records))
    hierarchy: dict[str, dict[str, dict[str, list[str]]]] = {}
    for r in records:
        hierarchy.setdefault(r.group, {}).setdefault(r.subgroup, {}).setdefault(
            r.base_name, []
        ).append(r.name)

    captions: list[str] = []
    owner: list[int] = []
    for i, r in enumerate(records):
        caps = emoji_captions(r)
        captions.extend(caps)
        owner.extend([i] * len(caps))

    def loader(i: int) -> Image.Image:
        data = paths[i].read_bytes()
        # The digest recorded at load time guards against a cache file changed since.
        if "sha256:" + hashlib.sha256(data).hexdigest() != digests[i]:
            raise OSError(f"cached emoji image {paths[i]} changed on disk; delete {folder}")
        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:
            raise OSError(
                f"cached emoji image {paths[i]} cannot be decoded ({err}); delete it and "
                "load the dataset again to render it anew"
            ) from err

    g_idx = {g: k for k, g in enumerate(groups_seen)}
    s_idx = {s: k for k, s in enumerate(subgroups_seen)}
    b_idx = {b: k for k, b in enumerate(bases_seen)}
    return PairedDataset(
        name="emoji",
        image_ids=[r.key for r in records],
        captions=captions,
        caption_to_image=np.asarray(owner, dtype=np.int64),
        image_splits=emoji_splits(records, split_fractions, seed=seed),
        image_loader=loader,
        image_digests=digests,
        image_meta={
            "char": [r.char for r in records],
            "codepoints": [r.key for r in records],
            "name": [r.name for r in records],
            "group": [r.group for r in records],
            "subgroup": [r.subgroup for r in records],
            "base_name": [r.base_name for r in records],
            "skin_tone": [r.skin_tone for r in records],
            "group_index": [g_idx[r.group] for r in records],
            "subgroup_index": [s_idx[(r.group, r.subgroup)] for r in records],
            "base_index": [b_idx[(r.group, r.subgroup, r.base_name)] for r in records],
        },
        metadata={
            "source": "emoji",
            "levels": ["group", "subgroup", "emoji", "skin_tone"],
            "hierarchy": hierarchy,
            "groups": groups_seen,
            "caption_version": _CAPTION_VERSION,
            "render_key": render_key,
            "render_dir": str(folder),
            "rendered_now": len(todo),
            "rerendered_bad_files": repaired,
            "render_seconds": render_seconds,
            "render_cpu_seconds": render_cpu_seconds,
            "multi_glyph": multi,
        },
        image_paths=paths,
    )
