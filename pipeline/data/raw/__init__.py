"""NYU Depth v2 raw frames, processed exactly as the dataset's MATLAB toolbox does.

One module per toolbox step, each usable and tested on its own: :mod:`~.camera`
(``camera_params.m``), :mod:`~.netpbm` (reading ``d-*.pgm`` / ``r-*.ppm`` with the toolbox's byte
order), :mod:`~.sync` (``get_synched_frames.m``), :mod:`~.undistort` (``undistort.m``,
``undistort_depth.m``, ``apply_distortion.m``), :mod:`~.disparity` (``depth_rel2depth_abs.m``),
:mod:`~.geometry` (``depth_plane2depth_world.m``, ``depth_world2rgb_world.m``,
``rgb_world2rgb_plane.m``) and :mod:`~.project` (``project_depth_map.m``). docs/design.md lists
every toolbox behaviour kept, with the file it comes from.
"""

from pipeline.data.raw.netpbm import read_pgm, read_ppm
from pipeline.data.raw.project import project_depth
from pipeline.data.raw.sync import synced_frames

__all__ = ["project_depth", "read_pgm", "read_ppm", "synced_frames"]
