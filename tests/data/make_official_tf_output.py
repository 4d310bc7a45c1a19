"""Writes tests/data/official_tf_output.npz: the authors' graph run by TensorFlow's own kernels.

Not part of the test suite and not a dependency: run once in a throwaway venv with
tensorflow-cpu (2.21 made the committed file), on the weights the test regenerates:

    python -c "import sys; sys.path.insert(0, 'tests'); import numpy as np; \
from official_reference import random_weights; from test_official import tf_shapes; \
np.savez('/tmp/w7.npz', **random_weights(tf_shapes(), seed=7))"
    /tmp/tfvenv/bin/python tests/data/make_official_tf_output.py /tmp/w7.npz

The graph is fcrn.py's layer list with network.py's operations, in TF 2 eager mode (float32,
NHWC): `conv` = tf.pad((k - 1) // 2) + tf.nn.conv2d VALID + bias_add, tf.nn.max_pool SAME,
tf.nn.batch_normalization (epsilon 1e-4), and the stack + reshape interleave.
"""

import sys

import numpy as np
import tensorflow as tf

W = dict(np.load(sys.argv[1]))
INPUT_SEED, SIZES = 8, ((96, 128), (67, 93))


def pad(x, top, bottom, left, right):
    return tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], "CONSTANT")


def conv(name, x, stride=1, relu=False, same=True):
    kernel = W[f"{name}/weights"]
    if same:
        ph, pw = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
        x = pad(x, ph, ph, pw, pw)
    y = tf.nn.conv2d(x, kernel, [1, stride, stride, 1], padding="VALID")
    if f"{name}/biases" in W:
        y = tf.nn.bias_add(y, W[f"{name}/biases"])
    return tf.nn.relu(y) if relu else y


def bn(name, x, relu=False):
    p = {k: W[f"{name}/{k}"] for k in ("mean", "variance", "offset", "scale")}
    y = tf.nn.batch_normalization(x, p["mean"], p["variance"], p["offset"], p["scale"], 1e-4)
    return tf.nn.relu(y) if relu else y


def interleave(tensors, axis):
    shape = [-1, *tensors[0].shape.as_list()[1:]]
    shape[axis] *= len(tensors)
    return tf.reshape(tf.stack(tensors, axis + 1), shape)


def unpool_as_conv(lid, x, relu):
    a = conv(f"layer{lid}_ConvA", x)
    b = conv(f"layer{lid}_ConvB", pad(x, 1, 0, 1, 1), same=False)
    c = conv(f"layer{lid}_ConvC", pad(x, 1, 1, 1, 0), same=False)
    d = conv(f"layer{lid}_ConvD", pad(x, 1, 0, 1, 0), same=False)
    y = bn(f"layer{lid}_BN", interleave([interleave([a, b], 1), interleave([c, d], 1)], 2))
    return tf.nn.relu(y) if relu else y


def resnet50_upproj(x):
    x = bn("bn_conv1", conv("conv1", x, 2), relu=True)
    x = tf.nn.max_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], padding="SAME")
    for stage, letters in {2: "abc", 3: "abcd", 4: "abcdef", 5: "abc"}.items():
        for letter in letters:
            n, s = f"{stage}{letter}", 2 if letter == "a" and stage != 2 else 1
            shortcut = bn(f"bn{n}_branch1", conv(f"res{n}_branch1", x, s)) if letter == "a" else x
            y = bn(f"bn{n}_branch2a", conv(f"res{n}_branch2a", x, s), relu=True)
            y = bn(f"bn{n}_branch2b", conv(f"res{n}_branch2b", y), relu=True)
            x = tf.nn.relu(shortcut + bn(f"bn{n}_branch2c", conv(f"res{n}_branch2c", y)))
    x = bn("layer1_BN", conv("layer1", x))
    for u in ("2x", "4x", "8x", "16x"):
        branch1 = bn(f"layer{u}_BN", conv(f"layer{u}_Conv", unpool_as_conv(f"{u}_br1", x, True)))
        x = tf.nn.relu(branch1 + unpool_as_conv(f"{u}_br2", x, False))
    return conv("ConvPred", x, relu=True)


rng = np.random.default_rng(INPUT_SEED)
outputs = {}
for h, w in SIZES:
    rgb = rng.random((1, h, w, 3)).astype(np.float32)  # [0, 1], as the PyTorch model takes
    outputs[f"{h}x{w}"] = resnet50_upproj(tf.constant(rgb * 255.0)).numpy()[..., 0]
np.savez_compressed("tests/data/official_tf_output.npz", **outputs)
