"""Every training error a user can cause names what to fix: the tag, the file or the value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tagsmith.errors import TrainingInputError
from tagsmith.examples import Example, check_examples, near_duplicate_pairs
from tagsmith.tagmodels import ModelKind
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import Components

from tests.fakes import COLOURS, solid_jpeg


def colour(tag: str, rgb: tuple[int, int, int], n: int, *, seed: int = 0, prefix: str = "") -> list[Example]:
    return [
        Example(
            tag, f"{prefix or tag}/{i}.jpg", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=25, seed=seed + i)
        )
        for i in range(n)
    ]


def train(c: Components, examples: list[Example], **options: Any) -> object:
    return c.trainer.train(
        tenant="acme", model_id="colour", examples=examples, options=TrainingOptions(**options)
    )


def test_train_refuses_a_single_tag_naming_it(components: Components) -> None:
    with pytest.raises(TrainingInputError, match="at least 2 tags") as e:
        train(components, colour("red", COLOURS["red"], 6))
    assert "found: red" in str(e.value)
    assert "Add a second tag" in str(e.value)


def test_train_refuses_tags_below_the_minimum_naming_each_with_its_count(components: Components) -> None:
    examples = (
        colour("red", COLOURS["red"], 6)
        + colour("green", COLOURS["green"], 2)
        + colour("blue", COLOURS["blue"], 1)
    )
    with pytest.raises(TrainingInputError) as e:
        train(components, examples)
    assert "at least 3 examples" in str(e.value)
    assert "green (2)" in str(e.value) and "blue (1)" in str(e.value)
    assert "red" not in str(e.value).split("add more to:")[1]


def test_check_warns_below_the_recommended_number_naming_the_tag() -> None:
    warnings = check_examples(colour("red", COLOURS["red"], 6) + colour("blue", COLOURS["blue"], 3))
    assert warnings == ["tag 'blue' has 3 examples; 5 or more give better results"]


def test_check_warns_of_strong_imbalance_naming_the_largest_and_smallest_tags() -> None:
    warnings = check_examples(colour("red", COLOURS["red"], 50) + colour("blue", COLOURS["blue"], 5))
    [imbalance] = [w for w in warnings if "imbalanced" in w]
    assert "50 for 'red' vs 5 for 'blue'" in imbalance


def test_train_refuses_unreadable_files_naming_each_file(components: Components) -> None:
    def missing() -> bytes:
        raise FileNotFoundError("No such file or directory: 'red/gone.jpg'")

    examples = colour("red", COLOURS["red"], 4) + colour("blue", COLOURS["blue"], 4)
    examples += [
        Example("red", "red/notes.jpg", lambda: b"%PDF-1.7 not an image"),
        Example("blue", "blue/gone.jpg", missing),
    ]
    with pytest.raises(TrainingInputError, match="2 example") as e:
        train(components, examples)
    assert "red/notes.jpg" in str(e.value) and "blue/gone.jpg" in str(e.value)
    assert "fix or remove them" in str(e.value)


def test_train_refuses_the_same_image_under_two_tags_naming_both_files(components: Components) -> None:
    same = solid_jpeg(COLOURS["red"], noise=25, seed=1)
    examples = colour("red", COLOURS["red"], 4, seed=10) + colour("blue", COLOURS["blue"], 4)
    examples += [
        Example("red", "red/shoot.jpg", lambda: same),
        Example("blue", "blue/copy-of-shoot.jpg", lambda: same),
    ]
    with pytest.raises(TrainingInputError, match="same image is an example of different tags") as e:
        train(components, examples)
    assert "red/shoot.jpg (red) == blue/copy-of-shoot.jpg (blue)" in str(e.value)


def test_train_uses_a_repeated_image_under_the_same_tag_once_and_says_so(components: Components) -> None:
    same = solid_jpeg(COLOURS["red"], noise=25, seed=1)
    examples = colour("red", COLOURS["red"], 4, seed=10) + colour("blue", COLOURS["blue"], 5)
    examples += colour("green", COLOURS["green"], 5)
    examples += [Example("red", "red/a.jpg", lambda: same), Example("red", "red/a-again.jpg", lambda: same)]
    report = train(components, examples)
    assert report.examples == 15  # type: ignore[attr-defined]
    assert any("red/a.jpg == red/a-again.jpg" in w for w in report.warnings)  # type: ignore[attr-defined]


def test_train_refuses_near_duplicate_images_under_two_tags_naming_both_files(components: Components) -> None:
    # GIVEN the same red photo saved twice with different noise, once as red and once as blue
    examples = colour("red", COLOURS["red"], 4) + colour("blue", COLOURS["blue"], 4)
    examples.append(
        Example("blue", "blue/red-looking.jpg", lambda: solid_jpeg(COLOURS["red"], noise=25, seed=77))
    )
    # WHEN training THEN the error names the pair and how to proceed
    with pytest.raises(TrainingInputError, match="nearly identical") as e:
        train(components, examples)
    assert "blue/red-looking.jpg (blue)" in str(e.value)
    assert "red/" in str(e.value) and "--allow-near-duplicates" in str(e.value)


def test_train_keeps_near_duplicates_as_a_warning_when_allowed(components: Components) -> None:
    examples = (
        colour("red", COLOURS["red"], 4)
        + colour("blue", COLOURS["blue"], 4)
        + colour("green", COLOURS["green"], 4)
    )
    examples.append(
        Example("blue", "blue/red-looking.jpg", lambda: solid_jpeg(COLOURS["red"], noise=25, seed=77))
    )
    report = train(components, examples, allow_near_duplicates=True)
    assert any("blue/red-looking.jpg" in w and "kept" in w for w in report.warnings)  # type: ignore[attr-defined]


def test_near_duplicate_pairs_ignores_similar_images_of_the_same_tag() -> None:
    import numpy as np

    x = np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 0, 1]], dtype=np.float32)
    assert near_duplicate_pairs(x, [0, 0, 1]) == []
    assert [(i, j) for i, j, _ in near_duplicate_pairs(x, [0, 1, 1])] == [(0, 1)]


def test_train_refuses_invalid_tag_ids_naming_them(components: Components) -> None:
    examples = colour("red shoes!", COLOURS["red"], 3) + colour("blue", COLOURS["blue"], 3)
    with pytest.raises(TrainingInputError, match="'red shoes!'"):
        train(components, examples)


def test_train_refuses_an_exclusive_example_with_two_tags_naming_it(components: Components) -> None:
    examples = colour("red", COLOURS["red"], 3) + colour("blue", COLOURS["blue"], 3)
    examples.append(Example.of(["red", "blue"], "both/purple.jpg", lambda: solid_jpeg((128, 0, 128))))
    with pytest.raises(TrainingInputError, match="more than one tag") as e:
        train(components, examples)
    assert "both/purple.jpg: red, blue" in str(e.value) and "--kind multilabel" in str(e.value)


def test_train_refuses_an_untagged_example_for_an_exclusive_model_naming_it(components: Components) -> None:
    examples = colour("red", COLOURS["red"], 3) + colour("blue", COLOURS["blue"], 3)
    examples.append(Example.of([], "loose/photo.jpg", lambda: solid_jpeg((128, 0, 128))))
    with pytest.raises(TrainingInputError, match="no tag") as e:
        train(components, examples)
    assert "loose/photo.jpg" in str(e.value)


def test_train_refuses_a_threshold_outside_zero_to_one_naming_the_value(components: Components) -> None:
    with pytest.raises(TrainingInputError, match=r"threshold must be in \(0, 1\], got 1.5"):
        train(
            components, colour("red", COLOURS["red"], 3) + colour("blue", COLOURS["blue"], 3), threshold=1.5
        )


def test_train_multilabel_refuses_a_tag_on_every_example_naming_it(components: Components) -> None:
    rgb: Callable[[int], tuple[int, int, int]] = lambda i: (40 * i % 255, 100, 200 - 20 * i)  # noqa: E731
    examples = [
        Example.of(
            ["product", "outdoor" if i % 2 else "people"],
            f"s/{i}.jpg",
            lambda i=i: solid_jpeg(rgb(i), noise=10, seed=i),
        )
        for i in range(8)
    ]
    with pytest.raises(TrainingInputError, match="'product'"):
        train(components, examples, kind=ModelKind.MULTILABEL)


def test_retraining_catches_a_new_near_duplicate_of_an_example_already_trained_on(
    components: Components,
) -> None:
    # GIVEN an active version trained on clean examples
    base = (
        colour("red", COLOURS["red"], 4)
        + colour("blue", COLOURS["blue"], 4)
        + colour("green", COLOURS["green"], 4)
    )
    train(components, base)
    # WHEN a new green example is a re-save of a red one already trained on
    added = Example("green", "green/new.jpg", lambda: solid_jpeg(COLOURS["red"], noise=25, seed=55))
    with pytest.raises(TrainingInputError, match="nearly identical") as e:
        train(components, [*base, added])
    # THEN the pair old ~ new is named
    assert "green/new.jpg (green)" in str(e.value) and "red/" in str(e.value)
