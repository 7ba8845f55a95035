"""pip install of the pure-Python core (model, tracker, node code, CLIs), without ROS.

The ROS package is built by CMakeLists.txt (colcon); this file serves `pip install .` and the
editable install that `make setup` does (--no-deps: the pinned set is requirements/lock.txt).
ROS message modules (fartrack_ros.msg) exist only in a colcon install.
"""

from setuptools import find_packages, setup

setup(
    name="fartrack_ros",
    version="0.1.0",
    description="FARTrack visual object tracking as a Python library, CLIs and a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["fartrack_ros", "fartrack_ros.*"]),
    # The bundled default model; other checkpoints under fartrack_ros/ are not shipped.
    package_data={"fartrack_ros": ["weights/default.*"]},
    install_requires=[
        # Capped at the version tested here: an open range lets pip pull a newer (multi-GB CUDA)
        # torch over an installed one; a torch of 2.1 or later that is already there is kept.
        "torch>=2.1,<=2.13.0",
        "numpy>=1.24",
        "opencv-contrib-python-headless>=4.8",
        "tqdm",
    ],
    extras_require={
        "onnx": ["onnx", "onnxruntime"],
        "plots": ["matplotlib"],
    },
    entry_points={
        "console_scripts": [
            # offline video (or image folder) -> boxes
            "fartrack-track = fartrack_ros.cli.track:main",
            # model / tracker / node speed, and OpenCV CSRT/KCF side by side
            "fartrack-bench = fartrack_ros.cli.bench:main",
            # AO / SR / success AUC on the generated synthetic sequences
            "fartrack-eval = fartrack_ros.cli.evaluate:main",
            # deterministic synthetic tracking sequences (and dataset conversion)
            "fartrack-make-data = fartrack_ros.cli.make_data:main",
            # training of the bundled default model
            "fartrack-train = fartrack_ros.cli.train:main",
            # 10,000 frames through the node: RSS growth and template memory at its cap
            "fartrack-soak = fartrack_ros.soak:main",
        ],
    },
)
