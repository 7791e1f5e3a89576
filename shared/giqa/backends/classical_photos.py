"""Real photographs with one region degraded, for calibrating and testing the classical judge.

Photos: the sample images that scikit-image and matplotlib ship INSIDE their wheels, read from the installed
package folder (never through ``skimage.data``'s fetchers, which may download: a missing file is an error).
They are split by name, once: ``CALIBRATION`` photos fit the curves, ``HELDOUT`` photos only ever test them
(decided: both sides mix people, animals, objects, outdoor scenes, documents and textures; the stereo pair
``motorcycle_left/right`` stays on one side).

Degradations follow KADID-10k's recipe (one distortion type at one of several levels, applied to the whole
picture), made region-local as GIQA-Synth makes them: the window is degraded whole and only the box is
pasted back, so the defect has its real spill at the edges and the surroundings stay clean.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from giqa.boxes import Box

# name -> (package, path inside it); all ship in the wheels (scikit-image >= 0.24, matplotlib >= 3.8)
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "camera": ("skimage", "data/camera.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "coins": ("skimage", "data/coins.png"),
    "moon": ("skimage", "data/moon.png"),
    "page": ("skimage", "data/page.png"),
    "text": ("skimage", "data/text.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "retina": ("skimage", "data/retina.jpg"),
    "ihc": ("skimage", "data/ihc.png"),
    "hubble": ("skimage", "data/hubble_deep_field.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "brick": ("skimage", "data/brick.png"),
    "grass": ("skimage", "data/grass.png"),
    "gravel": ("skimage", "data/gravel.png"),
    "cell": ("skimage", "data/cell.png"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
CALIBRATION: tuple[str, ...] = (
    "astronaut",
    "grace_hopper",
    "motorcycle_left",
    "motorcycle_right",
    "coins",
    "moon",
    "page",
    "retina",
    "ihc",
    "hubble",
    "brick",
    "gravel",
    "cell",
)
HELDOUT: tuple[str, ...] = ("camera", "chelsea", "coffee", "rocket", "grass", "text")

# kind -> its levels (weakest first). Strengths are for ~256 px windows and every level is visible
# to a person: a claim about a defect nobody would name has no right answer.
LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian_blur": (1.8, 3.0, 4.5),  # sigma, px
    "motion_blur": (9.0, 13.0, 19.0),  # line length, px
    "gaussian_noise": (0.05, 0.08, 0.12),  # sigma on [0, 1]
    "jpeg": (12.0, 7.0, 4.0),  # Pillow quality
    "darken": (0.45, 0.32, 0.2),  # multiplier
    "gamma_dark": (2.2, 3.0, 4.0),  # x ** g
    "overexpose": (1.9, 2.5, 3.3),  # multiplier, clipped
    "gamma_bright": (0.4, 0.3, 0.2),  # x ** g
    "pixelate": (5.0, 7.0, 10.0),  # block side, px
    "contrast": (0.4, 0.28, 0.18),  # blend factor towards the mean
}
# the judge's defect class each kind makes true
KIND_CLASS: dict[str, str] = {
    "gaussian_blur": "blur",
    "motion_blur": "blur",
    "gaussian_noise": "noise",
    "jpeg": "blocky",
    "darken": "dark",
    "gamma_dark": "dark",
    "overexpose": "bright",
    "gamma_bright": "bright",
    "pixelate": "pixelated",
    "contrast": "low_contrast",
}
_BLURS = ("gaussian_blur", "motion_blur")
# word -> (kinds that make it true of a degraded box (false for a positive word), True for a positive word):
# what the bench and the tests ask of a degraded box and of the same box clean
WORD_KINDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "blurry": (_BLURS, False),
    "noisy": (("gaussian_noise",), False),
    "dark": (("darken", "gamma_dark"), False),
    "overexposed": (("overexpose", "gamma_bright"), False),
    "blocky": (("jpeg",), False),
    "pixelated": (("pixelate",), False),
    "low contrast": (("contrast",), False),
    "sharp": ((*_BLURS, "pixelate"), True),
    "clear": ((*_BLURS, "gaussian_noise", "jpeg", "pixelate", "contrast"), True),
}
WINDOW = 256  # photos are cut into windows of this side (small crops keep the CPU cost modest)


def already_shows(values: dict[str, float], defect: str) -> bool:
    """True when a CLEAN crop already shows ``defect`` by plain statistics (no curve involved).

    A box in the black sky of a night photo is dark, clean or not; calling it "not dark" would teach the
    curve a falsehood. Such clean crops are neither negatives in calibration nor "No" items in the bench
    (decided: gray mean < 0.15 is dark, > 0.85 overexposed, a 2–98 percentile range under 0.15 low in
    contrast).
    """
    if defect == "dark":
        return values["mean"] < 0.15
    if defect == "bright":
        return values["mean"] > 0.85
    if defect == "low_contrast":
        return values["range"] < 0.2
    return False


def shows_change(values: dict[str, float], clean: dict[str, float], defect: str) -> bool:
    """False when degrading a box left it as it was for ``defect`` (brightening a black box, darkening
    one already black): such a crop is no example of the defect (decided: a 0.05 move of the mean or a
    0.05 loss of range)."""
    if defect == "dark":
        return clean["mean"] - values["mean"] >= 0.05
    if defect == "bright":
        return values["mean"] - clean["mean"] >= 0.05
    if defect == "low_contrast":
        return clean["range"] - values["range"] >= 0.05
    return True


class PhotoError(FileNotFoundError):
    """A sample photo that the installed package does not ship."""


def photo_path(name: str) -> Path:
    package, relative = PHOTOS[name]
    try:
        path = Path(str(resources.files(package).joinpath(relative)))
    except ModuleNotFoundError as exc:
        raise PhotoError(f"photo {name!r} needs the {package!r} package: {exc}") from None
    if not path.is_file():
        raise PhotoError(f"photo {name!r}: {path} is not shipped by this {package} install")
    return path


def load_photo(name: str, short_side: int = 320) -> Image.Image:
    """The photo as RGB, scaled so its shorter side is ``short_side`` (never enlarged)."""
    with Image.open(photo_path(name)) as img:
        image = img.convert("RGB")
    scale = short_side / min(image.size)
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    size = length if length % 2 else length + 1
    kernel = np.zeros((size, size))
    centre = size // 2
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        x, y = centre + t * np.cos(angle), centre + t * np.sin(angle)
        kernel[int(round(y)), int(round(x))] = 1.0
    return kernel / kernel.sum()


def degrade(image: Image.Image, kind: str, level: float, rng: np.random.Generator) -> Image.Image:
    """The whole ``image`` with one distortion of one strength (KADID-style types)."""
    if kind == "gaussian_blur":
        return image.filter(ImageFilter.GaussianBlur(level))
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(level))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")
    if kind == "pixelate":
        side = int(level)
        small = image.resize(
            (max(1, image.width // side), max(1, image.height // side)), Image.Resampling.BOX
        )
        return small.resize(image.size, Image.Resampling.NEAREST)
    x = np.asarray(image, dtype=np.float64) / 255.0
    if kind == "motion_blur":
        from scipy.ndimage import convolve

        kernel = _motion_kernel(int(level), float(rng.uniform(0, np.pi)))
        x = np.stack([convolve(x[..., c], kernel, mode="reflect") for c in range(3)], axis=-1)
    elif kind == "gaussian_noise":
        x = x + rng.normal(0.0, level, x.shape)
    elif kind in ("darken", "overexpose"):
        x = x * level
    elif kind in ("gamma_dark", "gamma_bright"):
        x = x**level
    elif kind == "contrast":
        x = x.mean() + (x - x.mean()) * level
    else:
        raise ValueError(f"unknown degradation {kind!r}; expected one of {sorted(LEVELS)}")
    return Image.fromarray(np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8), "RGB")


def degrade_region(
    image: Image.Image, box: Box, kind: str, level: float, rng: np.random.Generator
) -> Image.Image:
    """``image`` with only ``box`` degraded (the rest untouched)."""
    x1, y1, x2, y2 = box.to_pixels(*image.size)
    out = image.copy()
    out.paste(degrade(image, kind, level, rng).crop((x1, y1, x2, y2)), (x1, y1))
    return out


@dataclass(frozen=True, slots=True)
class Scene:
    """One window of one photo and the region that may be degraded in it."""

    photo: str
    index: int
    image: Image.Image
    box: Box


def scenes(names: tuple[str, ...] | list[str], per_photo: int, seed: int) -> Iterator[Scene]:
    """``per_photo`` random windows of each photo, each with a random box of 25–55% of its sides.

    Deterministic in (seed, photo name, index): a photo's scenes do not change when others are added.
    """
    for name in names:
        photo = load_photo(name)
        name_key = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little")
        for index in range(per_photo):
            rng = np.random.default_rng([seed, name_key, index])
            side = min(WINDOW, *photo.size)
            left = int(rng.integers(0, photo.width - side + 1))
            top = int(rng.integers(0, photo.height - side + 1))
            window = photo.crop((left, top, left + side, top + side))
            w, h = rng.uniform(0.25, 0.55, size=2)
            x, y = rng.uniform(0.0, 1.0 - w), rng.uniform(0.0, 1.0 - h)
            yield Scene(name, index, window, Box(float(x), float(y), float(x + w), float(y + h)))


def scene_rng(scene: Scene, kind: str, level_index: int, seed: int) -> np.random.Generator:
    """The generator for one degradation of one scene (noise and motion angle), stable across runs."""
    kind_key = sorted(LEVELS).index(kind)
    name_key = int.from_bytes(scene.photo.encode()[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng([seed, name_key, scene.index, kind_key, level_index, 1])
