"""Shared code for the Advanced CNN Architectures course notebooks.

models    LeNet-5, AlexNet, VGG, GoogLeNet, ResNet, DenseNet (paper-faithful)
analysis  parameter counts, MACs, shape traces, receptive fields
data      datasets kept on the training device, transforms as tensor ops
train     fit / evaluate / History: the training loop
device    where and how a model trains: device, precision, channels_last (fit and homework)
checkpoint  fit's checkpoint file and its bit-exact resume
plots     learning curves, filters, feature maps, comparison charts
papers    published figures with their sources
env       run mode and settings (RunSettings), Colab/Kaggle, seeding, run banner, expect
homework  the one-epoch homework's given part and its check
minimums  the check's minimum accuracy per notebook, run mode and data
t4        a full run's time on a T4 (calibrated estimate) and its fp16 training memory

The instructor's commands (run, homework, grade, html, ...) are not part of this package:
they live in the repository's course_tools/ (python -m course_tools --help).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("course-utils")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
