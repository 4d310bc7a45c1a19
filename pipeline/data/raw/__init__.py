"""NYU Depth v2 raw frames, processed exactly as the dataset's MATLAB toolbox does.

One module per toolbox step, each usable and tested on its own:

- :mod:`~.camera`: ``camera_params.m``;
- :mod:`~.netpbm`: ``d-*.pgm`` / ``r-*.ppm`` frames, with the toolbox's byte order;
- :mod:`~.accel`: ``a-*.dump`` frames (``get_accel_data``);
- :mod:`~.sync`: ``get_synched_frames.m``;
- :mod:`~.undistort`: ``undistort.m``, ``undistort_depth.m``, ``apply_distortion.m``;
- :mod:`~.disparity`: ``depth_rel2depth_abs.m``;
- :mod:`~.geometry`: ``depth_plane2depth_world.m``, ``depth_world2rgb_world.m``,
  ``rgb_world2rgb_plane.m``;
- :mod:`~.project`: ``project_depth_map.m``.

The pipeline's raw path (``data.train_source: raw``) adds :mod:`~.archives` (download, extract
the training folders), :mod:`~.scenes` (which folders may train), :mod:`~.frames` (sampling),
:mod:`~.train_split` (``train.h5``) and :mod:`~.selfcheck` (agreement with ``rawDepths``).

docs/design.md lists every toolbox behaviour kept, with the file it comes from. The writers
(``write_pgm``, ``write_ppm``, ``write_accel``, ``frame_name``) produce the recorder's layout for
synthetic scenes.
"""

from pipeline.data.raw.accel import read_accel, write_accel
from pipeline.data.raw.netpbm import read_pgm, read_ppm, write_pgm, write_ppm
from pipeline.data.raw.project import project_depth
from pipeline.data.raw.sync import frame_name, synced_frames

__all__ = [
    "frame_name",
    "project_depth",
    "read_accel",
    "read_pgm",
    "read_ppm",
    "synced_frames",
    "write_accel",
    "write_pgm",
    "write_ppm",
]
