"""Backend set-up that has to happen before (or right after) Keras is first imported.

Several trials share one GPU in a search, so neither TensorFlow nor JAX may grab all of
its memory up front; both decide that when they start, hence this module. TensorFlow is
imported only inside the branch where it is the selected backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_configured: str | None = None
# A Ray worker may import the backend in a thread as it starts (tuning.engines.ray_warmup)
# while its trial calls configure_backend(): the second caller waits for the first.
_lock = threading.Lock()
_quiet_start = False  # quiet_start_up() was called


def _requested_backend() -> str:
    """The backend Keras will pick, read the way Keras reads it, without importing Keras."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        settings = json.loads((keras_home / "keras.json").read_text())
    except (OSError, ValueError):
        return "tensorflow"
    return str(settings.get("backend", "tensorflow"))


def configure_backend() -> str:
    """Quiet TensorFlow's logs, stop GPU memory preallocation and return the backend name.

    Idempotent: the first call does the work, later calls only return the name. Call it
    before anything imports Keras; afterwards TensorFlow's memory growth can still be set
    as long as no GPU has been used yet (otherwise the GPU keeps its current setting).
    After `quiet_start_up`, the first call keeps the native libraries' start-up lines off
    the console, whoever makes it.

    Returns:
        The Keras backend name, e.g. ``"tensorflow"`` or ``"jax"``.
    """
    global _configured
    if _configured is not None:
        return _configured
    with _lock:
        if _configured is None:
            quiet = _quiet_start and os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"
            _configured = _configure_muted() if quiet else _configure()
    return _configured


def _configure() -> str:
    # Both are read once, when the library starts, so they must be set before import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _requested_backend() == "jax":
        # JAX would otherwise reserve 75% of the GPU for the first trial that starts.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    with _jax_hidden(_requested_backend() == "tensorflow"):
        import keras

    name = keras.backend.backend()
    if name == "jax":
        _enable_jax_compilation_cache()
    if name == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            # RuntimeError: the GPU was initialised before we got here and its setting can
            # no longer change; failing a trial over it would be worse than sharing less.
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
    return name


@contextlib.contextmanager
def _jax_hidden(hide: bool) -> Iterator[None]:
    """With ``hide``, ``import jax`` fails inside the block (unless JAX is already loaded).

    When JAX is installed, importing Keras on TensorFlow also imports JAX, for two things
    that go without it: TFLite's converter of JAX functions
    (``tensorflow/lite/python/util.py``) and a shim for Orbax checkpoints
    (``keras/src/callbacks/orbax_checkpoint.py``). Neither is used on the TensorFlow
    backend, and keeping JAX out made the import 1.6 s shorter on the 2-core machine
    (docs/benchmarks.md): every trial's worker pays it before its first step. After the
    block ``import jax`` works again.
    """
    if not hide or "jax" in sys.modules:
        yield
        return
    sys.modules["jax"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "jax" in sys.modules and sys.modules["jax"] is None:
            del sys.modules["jax"]


def quiet_start_up() -> None:
    """Keeps the backend's native start-up lines off the console in this process, whenever
    the backend is first imported.

    TensorFlow's C++ start-up lines (oneDNN custom operations, cudart / cuInit probing,
    CPU features) are written straight to file descriptor 2 and ignore
    TF_CPP_MIN_LOG_LEVEL in TF 2.21, so the command-line tools (``covidxr_core.train``,
    ``covidxr_core.predict``, ``tuning/run.py``) import the backend with that descriptor
    pointed at a temporary file. If the import fails, what it wrote is replayed to stderr
    with the exception. ``TF_CPP_MIN_LOG_LEVEL=0`` keeps the lines.

    A study's driver calls this instead of importing the backend up front: it builds
    configs, loads data and drives the search without Keras (the trials train in Ray's
    workers), and needs Keras only to export and explain the retrained winner.
    """
    global _quiet_start
    _quiet_start = True


def configure_backend_quietly() -> str:
    """`configure_backend` now, with the native start-up lines off the console
    (`quiet_start_up`).

    Returns:
        The Keras backend name.
    """
    quiet_start_up()
    return configure_backend()


def _configure_muted() -> str:
    """`_configure` with file descriptor 2 pointed at a temporary file (`quiet_start_up`)."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            name = _configure()
            if name == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices("GPU")  # the CUDA probe prints too
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(2, sink.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return name


def _enable_jax_compilation_cache() -> None:
    """Keep XLA's compiled programs on disk, shared by every trial on this machine.

    Trials of a search mostly repeat the same shapes (image size, batch size, widths), so
    after the first trial of a shape the next ones load its programs instead of
    compiling them again. Fast compilations are kept too: at this model's size they are
    most of what a trial compiles. COVIDXR_JAX_CACHE overrides the folder; set it to an
    empty string to turn the cache off.
    """
    folder = os.environ.get("COVIDXR_JAX_CACHE")
    if folder is None:
        from covidxr_core.cache import cache_root

        folder = str(cache_root() / "jax")
    if not folder:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def enable_determinism(seed: int) -> None:
    """Seed Python, NumPy and the backend, and make TensorFlow's kernels deterministic.

    With the same seed, data and backend on a CPU, two runs then give identical results.
    JAX is deterministic by construction once its keys are seeded.

    Args:
        seed: Seed for every random number generator Keras uses.
    """
    import keras

    tensorflow = configure_backend() == "tensorflow"
    if not (tensorflow and _reseed_tensorflow_in_place(seed)):
        keras.utils.set_random_seed(seed)
    if tensorflow:
        import tensorflow as tf

        # Without this, some TF CPU kernels (e.g. reductions split over threads) and the
        # tf.data shuffle may differ between runs.
        tf.config.experimental.enable_op_determinism()


def _reseed_tensorflow_in_place(seed: int) -> bool:
    """What `keras.utils.set_random_seed` does, for a TensorFlow seed already ``seed``.

    `tf.random.set_seed` restarts TensorFlow's sequence of op seeds and also clears every
    compiled function's kernels, so the next step of a model traced before (a reused
    model, `covidxr_core._reuse`) pays about a second to instantiate them again. At an
    unchanged seed nothing in those kernels depends on it: restart the sequence, seed
    Python, NumPy and Keras' global generator, and keep the kernels. False (nothing done)
    where the seed differs or these internals are not where Keras 3 and TensorFlow 2 keep
    them; the caller then seeds the documented way.
    """
    import random

    import numpy as np

    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
        from tensorflow.python.eager import context
    except ImportError:
        return False
    eager = context.context()
    if context.global_seed() != seed or not hasattr(eager, "_rng"):
        return False
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    eager._rng = random.Random(seed)
    return True


__all__ = [
    "configure_backend",
    "configure_backend_quietly",
    "enable_determinism",
    "quiet_start_up",
]
