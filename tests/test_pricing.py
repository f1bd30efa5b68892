"""Prices in family files: the `pricing:` format, its load errors, the estimates it gives (per second,
image, megapixel, request; rows, multipliers, defaults, credits, minimum), `extends`, and the `cost`
key of a dry run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tarash_router.client import Client
from tarash_router.engine.cost import estimate, estimate_or_reason
from tarash_router.errors import SpecError
from tarash_router.models import (
    ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest,
)
from tarash_router.specs.registry import SpecRegistry, builtin_spec_dir

VIDEO_FAMILY = """\
spec_version: 1
provider: fal
family: clip
models: [acme/clip, acme/clip/fast]
modality: video
params:
  duration_seconds: {allowed: [4, 8]}
  resolution: {allowed: ["720p", "1080p", "4k"]}
body:
  prompt: "{{ request.prompt }}"
  duration: "{{ request.duration_seconds }}"
  resolution: "{{ request.resolution }}"
  generate_audio: "{{ request.generate_audio }}"
"""

IMAGE_FAMILY = """\
spec_version: 1
provider: fal
family: still
models: [acme/still]
modality: image
body:
  prompt: "{{ request.prompt }}"
  image_size: "{{ request.size }}"
  num_images: "{{ request.n }}"
"""


def load(tmp_path: Path, text: str, name: str = "family.yaml") -> object:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    return registry.load_paths([tmp_path])[-1]


def video(**fields: object) -> VideoGenerationRequest:
    return VideoGenerationRequest(prompt="a cat", **fields)


def image(**fields: object) -> ImageGenerationRequest:
    return ImageGenerationRequest(prompt="a cat", **fields)


def test_a_table_by_model_resolution_and_audio_with_the_providers_defaults(tmp_path):
    family = load(tmp_path, VIDEO_FAMILY + """\
pricing:
  currency: USD
  per_second:
    - {match: {model: acme/clip, resolution: 4k}, price: 0.60, label: "4k"}
    - {match: {model: acme/clip, generate_audio: false}, price: 0.20, label: "no audio"}
    - {match: {model: acme/clip}, price: 0.40, label: "audio"}
  defaults: {duration_seconds: 8, generate_audio: true}
  source: https://example.com/pricing
  checked: 2026-12-05
""")
    assert estimate(family, "acme/clip", video(duration_seconds=4, resolution="4k")).amount == 2.4
    assert estimate(family, "acme/clip", video(duration_seconds=4, generate_audio=False)).amount == 0.8
    cost = estimate(family, "acme/clip", video())
    assert (cost.currency, cost.amount, cost.estimated) == ("USD", 3.2, True)
    assert cost.basis == ("8 s × $0.40/s (audio) = $3.20; unset, priced at the provider's default: "
                          "duration_seconds=8, generate_audio=true")
    two = estimate(family, "acme/clip", video(duration_seconds=4, number_of_videos=2))
    assert (two.amount, two.basis.split(" = ")[0]) == (3.2, "2 videos × 4 s × $0.40/s (audio)")
    found, why = estimate_or_reason(family, "acme/clip/fast", video())
    assert found is None and why == "no listed price matches acme/clip/fast with this request"


def test_multipliers_credits_and_a_minimum(tmp_path):
    family = load(tmp_path, VIDEO_FAMILY + """\
pricing:
  credits: 0.01
  per_second: 10
  multipliers:
    - {match: {resolution: 4k}, times: 2, label: 4k}
    - {when: "{{ request.generate_audio }}", times: 1.5, label: audio}
  minimum: 0.50
  source: https://example.com/pricing
  checked: 2026-12-05
""")
    cost = estimate(family, "acme/clip", video(duration_seconds=8, resolution="4k", generate_audio=True))
    assert cost.amount == 2.4
    assert cost.basis == "8 s × 10 credits/s × $0.01/credit × 2 (4k) × 1.5 (audio) = $2.40"
    short = estimate(family, "acme/clip", video(duration_seconds=4))
    assert short.amount == 0.5 and "raised to the minimum of $0.50 a job" in short.basis
    found, why = estimate_or_reason(family, "acme/clip", video())
    assert found is None and "no duration" in why  # no default duration declared: no guess


def test_per_megapixel_rounded_up_with_named_sizes(tmp_path):
    family = load(tmp_path, IMAGE_FAMILY + """\
pricing:
  per_megapixel: 0.025
  round_megapixels: up
  sizes: {square_hd: 1024x1024, landscape_4_3: 1024x768}
  defaults: {size: landscape_4_3}
  source: https://example.com/pricing
  checked: 2026-12-05
""")
    cost = estimate(family, "acme/still", image())
    assert cost.basis == ("1 image × 1 MP (1024x768, rounded up) × $0.025/MP = $0.025; unset, priced at the "
                          "provider's default: size=landscape_4_3")
    assert estimate(family, "acme/still", image(size="square_hd", n=2)).amount == 0.1  # 1.05 MP -> 2 MP each
    assert estimate(family, "acme/still", image(size="2048x2048")).amount == 0.125
    found, why = estimate_or_reason(family, "acme/still", image(size="huge"))
    assert found is None and "'huge'" in why


def test_per_image_per_request_and_other_currencies(tmp_path):
    per_image = load(tmp_path, IMAGE_FAMILY + """\
pricing:
  currency: EUR
  per_image:
    - {match: {quality: hd}, price: 0.08}
    - {price: 0.04}
  source: https://example.com/pricing
  checked: 2026-12-05
""")
    cost = estimate(per_image, "acme/still", image(n=3, quality="hd"))
    assert (cost.currency, cost.amount, cost.basis) == ("EUR", 0.24, "3 images × 0.08 EUR/image (quality hd) = 0.24 EUR")
    per_job = load(tmp_path, IMAGE_FAMILY.replace("still", "job") + """\
pricing: {per_request: 0.05, source: "https://example.com/p", checked: 2026-12-05}
""", "job.yaml")
    assert estimate(per_job, "acme/job", image(n=4)).basis == "1 job × $0.05/job = $0.05"


@pytest.mark.parametrize(("pricing", "line", "key", "message"), [
    ("pricing:\n  per_second: 0.4\n  per_image: 0.1\n  source: https://x.example\n  checked: 2026-12-05\n",
     14, "pricing", ("exactly one unit of per_second, per_image, per_megapixel, per_video, per_request; "
                     "found per_second, per_image")),
    ("pricing:\n  per_second: 0.4\n  checked: 2026-12-05\n", 14, "pricing.source", "missing required key 'source'"),
    ("pricing:\n  per_second: 0.4\n  source: fal.ai/pricing\n  checked: 2026-12-05\n",
     16, "pricing.source", "should match pattern"),
    (("pricing:\n  per_second:\n    - {match: {resolutoin: 4k}, price: 1}\n  source: https://x.example\n"
      "  checked: 2026-12-05\n"), 16, "pricing.per_second[0].match.resolutoin",
     "`match` names 'resolutoin', which is neither `model` nor a request field"),
    (("pricing:\n  per_second:\n    - {when: \"{{ request.audio }}\", price: 1}\n  source: https://x.example\n"
      "  checked: 2026-12-05\n"), 16, "pricing.per_second[0].when", "'request.audio' is not a field of request"),
    ("pricing:\n  per_second: 0.4\n  defaults: {seconds: 8}\n  source: https://x.example\n  checked: 2026-12-05\n",
     16, "pricing.defaults.seconds", "`defaults` names 'seconds', which is not a request field"),
    ("pricing:\n  per_second: -1\n  source: https://x.example\n  checked: 2026-12-05\n",
     15, "pricing.per_second", "greater than or equal to 0"),
    ("pricing:\n  per_second: 0.4\n  source: https://x.example\n  checked: soon\n",
     17, "pricing.checked", "valid date"),
])
def test_bad_pricing_names_file_line_and_key(tmp_path, pricing, line, key, message):
    path = tmp_path / "family.yaml"
    path.write_text(VIDEO_FAMILY + pricing)
    with pytest.raises(SpecError) as caught:
        SpecRegistry().load_paths([builtin_spec_dir(), tmp_path])
    error = caught.value
    assert (error.file, error.line, error.key) == (str(path), line, key), str(error)
    assert message in error.message


def test_extends_inherits_the_parents_prices_and_null_drops_them(tmp_path):
    (tmp_path / "parent.yaml").write_text(VIDEO_FAMILY.replace("family: clip", "family: parent") + """\
pricing: {per_second: 0.1, source: "https://x.example", checked: 2026-12-05}
""")
    (tmp_path / "child.yaml").write_text("spec_version: 1\nprovider: fal\nfamily: child\nextends: parent\n"
                                         "models: [acme/child]\n")
    (tmp_path / "orphan.yaml").write_text("spec_version: 1\nprovider: fal\nfamily: orphan\nextends: parent\n"
                                          "models: [acme/orphan]\npricing: null\n")
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir(), tmp_path])
    child = registry.resolve("fal", "acme/child", "video")
    assert estimate(child, "acme/child", video(duration_seconds=4)).amount == 0.4
    assert registry.resolve("fal", "acme/orphan", "video").pricing is None


def test_render_request_carries_the_estimate_under_cost(tmp_path):
    (tmp_path / "family.yaml").write_text(VIDEO_FAMILY + """\
pricing: {per_second: 0.25, source: "https://x.example", checked: 2026-12-05}
""")
    with Client(spec_dirs=[tmp_path]) as client:
        priced = client.render_request(VideoGenerationConfig(provider="fal", model="acme/clip"),
                                       video(duration_seconds=8))
        unpriced = client.render_request(ImageGenerationConfig(provider="fal", model="fal-ai/unlisted/model"),
                                         image())
    assert priced["json"] == {"prompt": "a cat", "duration": 8}
    assert priced["cost"] == {"currency": "USD", "amount": 2.0, "basis": "8 s × $0.25/s = $2.00", "estimated": True}
    assert unpriced["cost"] is None


def test_every_priced_builtin_family_has_a_golden_cost_example():
    registry = SpecRegistry()
    registry.load_paths([builtin_spec_dir()])
    priced = [f for f in registry.families(None) if f.pricing is not None]
    assert len(priced) >= 9
    for family in priced:
        spec = family.file.pricing
        assert spec.source.startswith("https://") and spec.checked.isoformat() == "2026-12-05", family.describe()
        golden = [e for e in family.file.examples if "cost" in e.model_fields_set and e.cost is not None]
        assert golden, f"{family.describe()} is priced but no example states a cost"
