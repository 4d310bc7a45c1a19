"""The synthetic NYU Depth v2 twin, by concern:

- :mod:`~.scene`: sampling a room (furniture, pictures, materials, light, camera pose);
- :mod:`~.raycast`: the pinhole's rays and their first hit;
- :mod:`~.shading`: textures, labels, lighting, exposure; :mod:`~.kinect`: the raw depth;
- :mod:`~.numeric`: the float32 arithmetic whose bytes do not depend on the CPU;
- :mod:`~.render`: one frame from a room, composing the above;
- :mod:`~.labeled`: ``nyu_depth_v2_labeled.mat`` and ``splits.mat`` of rendered rooms;
- :mod:`~.raw_twin`: the raw dataset's layout, rooms filmed along camera paths.

The labeled writer's and the renderer's names are importable from here.
"""

from pipeline.data.synthetic.kinect import KINECT_BASELINE_FOCAL, KINECT_SUBPIXEL
from pipeline.data.synthetic.labeled import (
    NYU_TEST_FRACTION,
    RawNames,
    generate,
    mat73_header,
    split_indices,
    write_labeled,
    write_splits,
)
from pipeline.data.synthetic.render import Frame, render_scene, render_view
from pipeline.data.synthetic.scene import NAMES, SCENE_TYPES, Scene, sample_scene

__all__ = [
    "KINECT_BASELINE_FOCAL",
    "KINECT_SUBPIXEL",
    "NAMES",
    "NYU_TEST_FRACTION",
    "SCENE_TYPES",
    "Frame",
    "RawNames",
    "Scene",
    "generate",
    "mat73_header",
    "render_scene",
    "render_view",
    "sample_scene",
    "split_indices",
    "write_labeled",
    "write_splits",
]
