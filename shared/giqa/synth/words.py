"""The vocabulary of quality: words per degradation, positive words, and which claims are safe to ask.

Kept apart from the sentence builder so QA and descriptions agree on what each word means.
"""

from __future__ import annotations

# Words a description may use for an object with this degradation (all adjectives or adjective phrases
# that read after "is"/"looks").
NEGATIVE_WORDS: dict[str, tuple[str, ...]] = {
    "blur": ("blurry", "blurred", "out of focus", "fuzzy"),
    "motion_blur": ("motion-blurred", "smeared", "blurry"),
    "noise": ("noisy", "grainy", "speckled"),
    "low_light": ("dark", "underexposed", "too dark", "dim"),
    "overexposure": ("overexposed", "washed out", "too bright", "blown out"),
    "jpeg": ("blocky", "pixelated"),
    "low_contrast": ("low-contrast", "faded", "dull"),
}

# Positive words and the degradation kinds that would make each one false.
POSITIVE_WORDS: dict[str, frozenset[str]] = {
    "sharp": frozenset({"blur", "motion_blur", "jpeg"}),
    "clear": frozenset({"blur", "motion_blur", "jpeg", "noise", "low_contrast", "low_light", "overexposure"}),
    "crisp": frozenset({"blur", "motion_blur", "jpeg", "low_contrast"}),
    "in focus": frozenset({"blur", "motion_blur"}),
    "well-defined": frozenset({"blur", "motion_blur", "jpeg"}),
    "well-exposed": frozenset({"low_light", "overexposure"}),
    "clean": frozenset({"noise", "jpeg"}),
    "vivid": frozenset({"low_contrast", "low_light", "overexposure"}),
}

# Noun for What-questions ("What distortion affects ...?" -> "Blur.").
DISTORTION_NOUNS: dict[str, tuple[str, ...]] = {
    "blur": ("Blur.", "Out-of-focus blur."),
    "motion_blur": ("Motion blur.",),
    "noise": ("Noise.",),
    "low_light": ("Underexposure.", "Low light."),
    "overexposure": ("Overexposure.",),
    "jpeg": ("Compression artifacts.", "JPEG blocking."),
    "low_contrast": ("Low contrast.",),
}

CAUSES: dict[str, tuple[str, ...]] = {
    "blur": ("Because the focus is off", "With the focus missed"),
    "motion_blur": ("Because of camera shake", "Due to motion during the exposure"),
    "noise": ("Due to sensor noise", "Because of heavy grain"),
    "low_light": ("Because of poor lighting", "With too little light"),
    "overexposure": ("Because of too much light", "With the exposure pushed too far"),
    "jpeg": ("Due to heavy compression", "Because of strong compression"),
    "low_contrast": ("Because of haze", "With the contrast lost"),
}

# Yes/No claims: one plain word per kind, asked as "Is the X <claim>?".
CLAIMS: dict[str, str] = {
    "blur": "blurry",
    "motion_blur": "motion-blurred",
    "noise": "noisy",
    "low_light": "underexposed",
    "overexposure": "overexposed",
    "jpeg": "blocky",
    "low_contrast": "low in contrast",
}

# Kinds whose claim is also (partly) true of an object that has another kind: asking "is it blurry?" of
# a motion-blurred or heavily compressed object has no clean answer, so such questions are not asked.
CONFUSABLE: dict[str, frozenset[str]] = {
    "blur": frozenset({"motion_blur", "jpeg"}),
    "motion_blur": frozenset({"blur", "jpeg"}),
    "noise": frozenset({"jpeg"}),
    "low_light": frozenset({"low_contrast"}),
    "overexposure": frozenset({"low_contrast"}),
    "jpeg": frozenset({"blur", "motion_blur", "noise"}),
    "low_contrast": frozenset({"low_light", "overexposure", "blur", "motion_blur"}),
}

# How-questions: an attribute of an object and the answer for each state.
HOW_ATTRIBUTES: dict[str, tuple[str, dict[str, str], str]] = {
    # attribute: (question stem, answer per degradation kind, answer when none of those kinds)
    "sharpness": ("How is the sharpness of", {"blur": "Low.", "motion_blur": "Low."}, "High."),
    "brightness": ("How is the brightness of", {"low_light": "Low.", "overexposure": "Too high."}, "Normal."),
    "noise": ("How is the noise level of", {"noise": "High."}, "Low."),
    "contrast": ("How is the contrast of", {"low_contrast": "Low."}, "Normal."),
}
# The degradation kinds that decide each attribute's answer, plus the ones that blur it.
HOW_DEPENDS: dict[str, frozenset[str]] = {
    "sharpness": frozenset({"blur", "motion_blur", "jpeg"}),
    "brightness": frozenset({"low_light", "overexposure"}),
    "noise": frozenset({"noise", "jpeg"}),
    "contrast": frozenset({"low_contrast", "low_light", "overexposure"}),
}

BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "uniform"),
    "gradient": ("gradient", "smoothly shaded"),
    "radial": ("softly shaded", "radially shaded"),
    "stripes": ("striped",),
    "checker": ("checkered", "chequered"),
    "noise": ("mottled", "blotchy"),
}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def severity_word(severity: float) -> str:
    """How-answer for the strength of a degradation."""
    if severity < 0.55:
        return "Mild."
    if severity < 0.8:
        return "Moderate."
    return "Severe."
