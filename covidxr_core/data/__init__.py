"""Data: from a folder of radiographs to cached uint8 arrays, decoded once.

``load_dataset(DIR)`` discovers ``DIR/<split>/<class>/<image>``, decodes every image
once (in parallel, with Pillow) into ``uint8`` arrays of shape (N, H, W, C), caches them
on disk and returns a `Dataset`. ``load_dataset(None)`` does the same for synthetic demo
data. ``python -m covidxr_core.data DIR`` prints a summary and a leakage check.

Layout
    Splits are ``train`` (required), ``validation`` (also ``val``, ``valid``) and
    ``test``, matched case-insensitively; other folders are ignored with a note. Classes are
    the train split's sub-folders, sorted by name; there must be at least two, and every
    split must have the same class folders, each with at least one image (an empty class
    folder is a `DataError` naming it). Files in nested folders under a class folder
    belong to that class. A missing validation or test split is carved out of train
    (see Carving). ``Dataset.notes`` says what was carved.

Carving (``_carve``)
    A missing validation or test split is carved out of train after decoding, because
    it needs the fingerprints the decode pass caches: ``load_dataset`` = `scan` (list
    files) -> decode or cache hit (pixels + fingerprints) -> carve -> split. First the
    files are clustered (union-find): exact duplicates (same sha256), near duplicates
    (the rule of `find_duplicates`: perceptual hashes within ``NEAR_DUPLICATE_BITS``) and
    files of one group (``DataConfig.groups``) are one cluster, transitively. A whole
    cluster goes to one split: clusters are ranked by a seeded hash of their first path
    and, in that order, go to test, then validation, while the split still has room for
    all of the cluster's files under the per-class target ``max(1, round(fraction *
    n_class))``; what does not fit stays in train, unless a second pass finds that it
    brings a split closer to its target (a note says when clusters made a split miss
    it). A train cluster that reaches a given validation or test folder stays in train.
    The carve is deterministic, independent of file order and the NumPy version; with no
    duplicates and no groups it is the earlier per-file carve, file for file. `discover`
    carves the same way (it computes fingerprints, or reads them from the cache, only
    when a split is missing or ``drop_leaked`` is set); changing the carving settings
    never re-decodes anything.

Groups (``DataConfig.groups``)
    A CSV with columns ``path,group`` (e.g. a patient id); ``path`` relative to the data
    folder or absolute inside it; unlisted files are a group each. A group is never
    split by carving; a group found in two (given) splits is reported by
    `find_group_leaks` and in a note (``group 'patient 17' in train and validation``).
    A missing column, a path that is not an image of the folder, an empty group or one
    path in two groups is a `DataError` naming the file, the line, the rule and the value.

Dropping leaked files (``DataConfig.drop_leaked``)
    Off by default: the leakage check only reports. When on, every validation or test
    file that `find_duplicates` pairs with a train file (exact or near) is removed from
    its split and listed in ``Dataset.dropped`` as `DroppedFile` (file, duplicate_of,
    split, kind, distance), with a note giving the count. A class it would empty is a
    `DataError`. Duplicates between validation and test are reported, not dropped.

External sets (`load_external`)
    ``load_external(DIR, config, class_names)`` reads a labelled folder laid out
    ``DIR/<class>/*`` or ``DIR/<split>/<class>/*`` (splits pooled) with the main data's
    class names (a class folder the main data lacks is a `DataError`; a class the set
    lacks is a note) and returns an `ExternalSet` (uint8 images, int32 labels in
    ``class_names`` order, files, counts, notes), decoded and cached as ``load_dataset``
    does, with the same image_size, channels and bad-image policy.

Files that are ignored (silently, but counted in a note)
    Hidden files and folders (names starting with "."): ``.DS_Store``, macOS ``._x.jpg``
    resource forks, ``.ipynb_checkpoints``. Files whose extension is not one of
    ``IMAGE_EXTENSIONS`` (``notes.txt``, ``labels.csv``). Loose files in a split folder.

Bad images (``DataConfig.on_bad_image``)
    A file with an image extension is bad when it is empty, unreadable, not an image
    Pillow can identify (e.g. text renamed to ``.png``), truncated or corrupt, or a
    decompression bomb: more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's limit
    is kept; its warning between 1x and 2x the limit counts as a bomb too). Under
    ``"skip"`` (the default) it is left out and listed in ``Dataset.skipped`` as
    ``(path, reason)`` and in a note; under ``"error"`` loading raises `BadImageError`
    naming the file, the rule and the value. Either way every good file is decoded and
    cached first, so nothing computed is lost: a rerun under ``"skip"`` is a cache hit
    (removing the bad file changes the file list, and so the cache key). Should skipping
    leave a class of some split empty, that is a `DataError`.

Modes
    Images are EXIF-transposed, then made 8-bit: 16-bit and 32-bit greyscale are
    stretched from their own min..max to 0..255 (not clipped); alpha (RGBA, LA, palette
    with transparency) is composited on black, the background of a radiograph; palette,
    CMYK, YCbCr and bilevel images are converted by Pillow. Then greyscale uses ITU-R
    601 luma (``channels=1``) or RGB (``channels=3``), and the image is resized to a
    square ``image_size`` with antialiased bilinear filtering (aspect ignored, as
    ``flow_from_directory`` does). JPEGs are decoded at a reduced DCT scale first
    (``Image.draft``), never below ``image_size``. Only the first frame of a multi-frame
    file (GIF, TIFF) is used.

Symlinks
    Links are followed when their target lies inside the data folder (the folder itself
    is resolved first). A link that leaves the data folder, a broken link, and a folder
    link that leads back to a folder already listed (a loop) are not followed; each is
    listed in ``Dataset.skipped`` with the reason. Nor is a folder link into a class
    folder (of any split), which is listed on its own: an image's class and split are
    those of the folder it really lies in, whatever links point at it.
    A file with an image extension that is not a regular file (a named pipe, a socket,
    a device) is never opened, since reading one can block forever; it is listed in
    ``Dataset.skipped`` too.

Cache
    Under ``DataConfig.cache_dir``, else ``$COVIDXR_CACHE``, else ``~/.cache/covidxr``.
    One entry per (relative file list with sizes and mtimes, image_size, channels,
    Pillow version, format version): carving, the positive class and the bad-image
    policy do not change it, and moving the data folder keeps it valid. An entry is a
    memory-mappable ``images.npy`` plus a JSON manifest with its blake2b checksum,
    verified on every load; an entry that fails is rebuilt (with a note), never used.
    Entries are written to a temporary folder and renamed into place, so concurrent runs
    never see half an entry. A rebuilt folder's older entry is removed.

Decoding runs in ``DataConfig.workers`` threads of the calling process (Pillow releases
the GIL while it decodes and resizes; ``benchmarks/decode_pool.py`` measured threads
1.05-1.3x the images/s of a process pool on covid-cxr, 2 workers, 128 and 300 px, in
three runs). No process is started and nothing
re-imports the caller's main module, so a plain script needs no
``if __name__ == "__main__":`` guard, and it is safe next to TensorFlow or Ray threads.

Leakage (`find_duplicates`, `find_group_leaks`)
    Exact duplicates (same sha256) and near duplicates (perceptual hash within
    ``NEAR_DUPLICATE_BITS`` of 256 bits) across splits, after carving (and dropping);
    see ``covidxr_core/data/_fingerprints.py`` for the hash and how the threshold was
    measured. Carving never puts a duplicate pair on two sides, so what is reported lies
    between given split folders. Groups in two splits: `find_group_leaks`.

Importing this package imports NumPy and Pillow only: no Ray, TensorFlow or Keras.
"""

from __future__ import annotations

from covidxr_core.data._cache import file_checksum
from covidxr_core.data._carve import discover
from covidxr_core.data._config import DataConfig
from covidxr_core.data._dataset import SPLITS, Dataset, DroppedFile, SplitArrays
from covidxr_core.data._decode import (
    DecodeResult,
    DecodeTask,
    cpu_budget,
    decode_calls,
    decode_task,
)
from covidxr_core.data._discover import IMAGE_EXTENSIONS, DataLayout, FileEntry
from covidxr_core.data._external import ExternalSet, load_external
from covidxr_core.data._groups import GroupLeak
from covidxr_core.data._leakage import (
    NEAR_DUPLICATE_BITS,
    DuplicatePair,
    find_duplicates,
    find_group_leaks,
)
from covidxr_core.data._load import load_dataset
from covidxr_core.data._synthetic import (
    DEMO_CLASSES,
    DEMO_COUNTS,
    DEMO_SEED,
    DEMO_VERSION,
    demo_data_path,
    draw_radiograph,
)

__all__ = [
    "DEMO_CLASSES",
    "DEMO_COUNTS",
    "DEMO_SEED",
    "DEMO_VERSION",
    "IMAGE_EXTENSIONS",
    "NEAR_DUPLICATE_BITS",
    "SPLITS",
    "DataConfig",
    "DataLayout",
    "Dataset",
    "DecodeResult",
    "DecodeTask",
    "DroppedFile",
    "DuplicatePair",
    "ExternalSet",
    "FileEntry",
    "GroupLeak",
    "SplitArrays",
    "cpu_budget",
    "decode_calls",
    "decode_task",
    "demo_data_path",
    "discover",
    "draw_radiograph",
    "file_checksum",
    "find_duplicates",
    "find_group_leaks",
    "load_dataset",
    "load_external",
]
