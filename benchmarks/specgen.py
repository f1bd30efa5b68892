"""Generate N realistic Fal family spec files (B2): distinct model ids, a handful of shapes.

Five shapes modelled on the built-in fal families (text-to-video, image-to-video with first/last
frames, text-to-image, a video model with its own response paths, image editing), so the
files share a few distinct templates and JSONPaths the way a real catalogue does. The provider
file is the built-in fal one, copied, so the directory loads on its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SHAPES = [
    # text-to-video, like veo3
    """\
spec_version: 1
provider: fal
family: bench-t2v-{i}
description: Benchmark text-to-video family {i}
docs: https://fal.ai/models/bench-org/t2v-{i}/api
models: [bench-org/t2v-{i}, bench-org/t2v-{i}/fast]
modality: video
capabilities: [text_to_video]
params:
  duration_seconds: {{allowed: [4, 6, 8]}}
  aspect_ratio: {{allowed: ["16:9", "9:16"]}}
  resolution: {{allowed: ["720p", "1080p"]}}
body:
  prompt: "{{{{ request.prompt }}}}"
  duration: "{{{{ request.duration_seconds | suffix('s') }}}}"
  aspect_ratio: "{{{{ request.aspect_ratio }}}}"
  resolution: "{{{{ request.resolution }}}}"
  generate_audio: "{{{{ request.generate_audio }}}}"
  negative_prompt: "{{{{ request.negative_prompt }}}}"
  seed: "{{{{ request.seed }}}}"
extra_params: merge
examples:
  - request: {{prompt: "a cat", duration_seconds: 8, aspect_ratio: "16:9"}}
    body: {{prompt: "a cat", duration: "8s", aspect_ratio: "16:9"}}
""",
    # image-to-video with first and last frames, like kling
    """\
spec_version: 1
provider: fal
family: bench-i2v-{i}
description: Benchmark image-to-video family {i}
models:
  - bench-org/i2v-{i}/pro/image-to-video
  - bench-org/i2v-{i}/standard/image-to-video
modality: video
capabilities: [image_to_video, first_last_frame]
params:
  duration_seconds: {{allowed: [5, 10]}}
  images:
    start: {{required: true, from: [first_frame, reference]}}
    last_frame: optional
body:
  prompt: "{{{{ request.prompt or none }}}}"
  start_image_url: "{{{{ images.start }}}}"
  end_image_url: "{{{{ images.last_frame }}}}"
  duration: "{{{{ request.duration_seconds | string_or_none }}}}"
  negative_prompt: "{{{{ request.negative_prompt }}}}"
extra_params: merge
examples:
  - request:
      prompt: "the bridge lights up"
      duration_seconds: 5
      image_list: [{{image: "https://example.com/day.png", type: first_frame}}]
    body: {{prompt: "the bridge lights up", start_image_url: "https://example.com/day.png", duration: "5"}}
""",
    # text-to-image, like minimax image-01
    """\
spec_version: 1
provider: fal
family: bench-t2i-{i}
description: Benchmark text-to-image family {i}
models: [bench-org/t2i-{i}]
modality: image
capabilities: [text_to_image]
params:
  n: {{min: 1, max: 4}}
  aspect_ratio: {{allowed: ["1:1", "16:9", "9:16", "4:3", "3:4"]}}
body:
  prompt: "{{{{ request.prompt }}}}"
  aspect_ratio: "{{{{ request.aspect_ratio }}}}"
  num_images: "{{{{ request.n }}}}"
  seed: "{{{{ request.seed }}}}"
extra_params: merge
response:
  images: "$.images[*].url"
  content_type: "$.images[0].content_type"
examples:
  - request: {{prompt: "a teapot", n: 2}}
    body: {{prompt: "a teapot", num_images: 2}}
""",
    # video with its own response paths
    """\
spec_version: 1
provider: fal
family: bench-video-out-{i}
description: Benchmark video family {i} with a nested output
models: [bench-org/video-out-{i}]
modality: video
capabilities: [text_to_video]
params:
  duration_seconds: {{min: 1, max: 10}}
body:
  prompt: "{{{{ request.prompt }}}}"
  num_frames: "{{{{ request.duration_seconds * 24 if request.duration_seconds }}}}"
  seed: "{{{{ request.seed }}}}"
extra_params: {{allow: [guidance_scale, num_inference_steps]}}
response:
  video: [$.output.video.url, "$.videos[0].url"]
  duration: $.output.duration
  content_type: $.output.video.content_type
examples:
  - request: {{prompt: "waves", duration_seconds: 2}}
    body: {{prompt: "waves", num_frames: 48}}
""",
    # image editing with several reference images
    """\
spec_version: 1
provider: fal
family: bench-edit-{i}
description: Benchmark image-edit family {i}
models: [bench-org/edit-{i}/edit]
modality: image
capabilities: [image_to_image]
params:
  n: {{min: 1, max: 4}}
  images:
    reference: {{required: true, max: 4}}
body:
  prompt: "{{{{ request.prompt }}}}"
  image_urls: "{{{{ images.reference }}}}"
  num_images: "{{{{ request.n }}}}"
extra_params: merge
examples:
  - request:
      prompt: "make it blue"
      image_list: [{{image: "https://example.com/a.png", type: reference}}]
    body: {{prompt: "make it blue", image_urls: ["https://example.com/a.png"]}}
""",
]


def write_family_specs(root: Path, count: int, provider_file: Path) -> Path:
    """Write `count` family files plus the fal provider file under `root/fal`; return that folder."""
    folder = root / "fal"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(provider_file, folder / "provider.yaml")
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]
        (folder / f"bench-{i:04d}.yaml").write_text(shape.format(i=f"{i:04d}"), encoding="utf-8")
    return folder
